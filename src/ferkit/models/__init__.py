"""The paper's networks behind a registry."""

from .registry import (
    ModelInfo,
    count_params,
    create_model,
    list_models,
    model_info,
    register_model,
)

__all__ = [
    "ModelInfo",
    "count_params",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]
