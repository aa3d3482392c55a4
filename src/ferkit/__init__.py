"""ferkit: facial expression recognition with the BKVGG CNNs of Sang, Dat & Thuan (2017).

The public names are imported when first used (module ``__getattr__``), so that importing
the package, and so ``ferkit --help``, never loads torch."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "LABELS": "ferkit.labels",
    "Face": "ferkit.predict.recognizer",
    "Recognizer": "ferkit.predict.recognizer",
    "create_model": "ferkit.models",
    "list_models": "ferkit.models",
    "load_model": "ferkit.fermodel.files",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # once: later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
