"""The REST API and dashboard server: ``create_app`` and ``serve_api``.

Routes (JSON; errors are ``{"error": {"code", "message", "details"}}``;
``/api/*`` and ``/metrics`` need ``Authorization: Bearer`` when
``api_token`` is set; ``/openapi.json`` documents every one):

- tasks: ``POST /api/tasks``, ``POST /api/tasks/batch``, ``GET /api/tasks``
  (list and search), ``GET|DELETE /api/tasks/{id}``,
  ``POST /api/tasks/{id}/cancel|retry``, ``POST /api/tasks/bulk``
- admin: ``GET /api/queues``, ``POST /api/queues/{name}/pause|resume``,
  ``GET /api/dead``, ``POST /api/dead/requeue|purge``, ``GET /api/workers``,
  ``GET /api/stats``, ``GET /api/cron``, ``GET /api/types``,
  ``GET /api/types/stats``, ``GET /api/nodes``, ``GET /api/events`` (SSE)
- open: ``GET /healthz``, ``GET /openapi.json``, ``/`` and ``/static/*``
- ``GET /metrics``: Prometheus text
"""

from .app import create_app
from .server import serve_api
from .state import ApiState, api_state

__all__ = ["ApiState", "api_state", "create_app", "serve_api"]
