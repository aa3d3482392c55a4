"""ferkit: facial expression recognition with the BKVGG CNNs of Sang, Dat & Thuan (2017)."""

from __future__ import annotations

from .checkpoint import load_model
from .labels import LABELS
from .models import create_model, list_models
from .predict import Face, Recognizer

__version__ = "0.1.0"
__all__ = [
    "LABELS",
    "Face",
    "Recognizer",
    "create_model",
    "list_models",
    "load_model",
    "__version__",
]
