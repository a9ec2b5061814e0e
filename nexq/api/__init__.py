"""The REST API and dashboard server: ``create_app`` and ``serve_api``."""

from .app import create_app
from .metrics import Histogram
from .server import serve_api
from .state import ApiState, api_state

__all__ = ["ApiState", "Histogram", "api_state", "create_app", "serve_api"]
