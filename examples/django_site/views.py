"""Django views: enqueue with the task's own ``enqueue`` (blocking, shared client).

    DJANGO_SETTINGS_MODULE=examples.django_site.settings django-admin runserver
    nexq worker --app examples.tasks:app
"""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from examples.tasks import app as tasks
from examples.tasks import send_email
from nexq import StoreFull, StoreUnavailable


@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    email = json.loads(request.body)["email"]
    try:
        handle = send_email.enqueue({"to": email})
    except (StoreUnavailable, StoreFull) as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse({"task_id": handle.id}, status=202)


@require_GET
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    task = tasks.client().get(task_id)
    if task is None:
        return JsonResponse({"error": f"no task {task_id}"}, status=404)
    return JsonResponse({"id": task.id, "status": task.status.value, "result": task.result})
