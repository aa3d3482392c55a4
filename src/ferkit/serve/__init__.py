"""``ferkit serve``: an HTTP API and a web page over a :class:`ferkit.Recognizer`."""

from .app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
