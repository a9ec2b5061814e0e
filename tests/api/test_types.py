"""One rule set: what REST refuses the Python API refuses; tasks made over
HTTP get their type's defaults from the handler here or from live workers;
/api/types and /api/cron list what the live workers publish."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from nexq.api import create_app
from nexq.app import Nexq
from nexq.config import Settings
from nexq.runtime.runtime import Runtime
from nexq.runtime.worker import Worker
from nexq.store import Store

# (REST body fields, the same through app.enqueue): each is refused by both.
REFUSED = [
    ({"queue": "a b"}, {"queue": "a b"}),
    ({"queue": "q" * 101}, {"queue": "q" * 101}),
    ({"queue": "a\u00a0b"}, {"queue": "a\u00a0b"}),
    ({"type": " \ufeff"}, {"type": " \ufeff"}),
    ({"type": "t" * 201}, {"type": "t" * 201}),
    ({"max_retries": 1001}, {"max_retries": 1001}),
    ({"max_retries": True}, {"max_retries": True}),
    ({"max_retries": "3"}, {"max_retries": "3"}),
    ({"timeout": 0}, {"timeout": 0}),
    ({"timeout": 365 * 86_400 + 1}, {"timeout": 365 * 86_400 + 1}),
    ({"schedule_in": 11 * 365 * 86_400}, {"delay": 11 * 365 * 86_400}),
    ({"unique_key": ""}, {"unique_key": ""}),
    ({"unique_key": "u" * 1025}, {"unique_key": "u" * 1025}),
    ({"webhook": "https://exa mple.com/"}, {"webhook": "https://exa mple.com/"}),
    ({"depends_on": [""]}, {"depends_on": [""]}),
    ({"priority": 10}, {"priority": 10}),
    ({"expires_in": 0}, {"expires_in": 0}),
]


@pytest.mark.parametrize("rest,python", REFUSED, ids=[repr(r)[:40] for r, _ in REFUSED])
async def test_the_python_api_refuses_what_rest_refuses(store: Store, prefix: str, rest: dict[str, Any],
                                                        python: dict[str, Any]) -> None:
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store)
    r = await create_app(rt).test_client().post("/api/tasks", json={"type": "t", **rest})
    assert r.status_code == 400
    app = Nexq()
    app.bind(rt)
    options = {k: v for k, v in python.items() if k != "type"}
    with pytest.raises(ValueError):
        await app.enqueue(python.get("type", "t"), None, **options)
    assert (await rt.inspector.list(limit=5)).tasks == []


async def test_an_unknown_python_option_is_a_value_error_naming_it(store: Store, prefix: str) -> None:
    app = Nexq()
    app.bind(Runtime.build(Settings(namespace=prefix.rstrip(":")), store))
    with pytest.raises(ValueError, match="unknown option 'queu'"):
        await app.enqueue("t", queu="mail")
    with pytest.raises(ValueError, match="unknown option 'retries'"):
        await app.enqueue_many([("t", None, {"retries": 1})])


async def test_http_gets_the_live_workers_defaults_and_lists_their_types_and_cron(
        store: Store, prefix: str) -> None:
    ns = prefix.rstrip(":")
    served = Nexq()

    @served.task("deliver_mail", queue="mail", max_retries=0, rate_limit="10/s")
    async def deliver(payload: Any) -> Any:
        return payload

    served.cron("mail-digest", "0 6 * * *", "deliver_mail", {"digest": True})
    wrt = Runtime.build(Settings(namespace=ns), store, app=served)
    served.bind(wrt)
    w = Worker(wrt, served, concurrency=1)
    api = create_app(Runtime.build(Settings(namespace=ns), store)).test_client()  # no app here
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: w.run(grace=1.0, task_status=task_status))
        r = await api.post("/api/tasks", json={"type": "deliver_mail"})
        task = await r.get_json()
        assert r.status_code == 201 and (task["queue"], task["max_retries"]) == ("mail", 0)
        r = await api.post("/api/tasks/batch", json={"tasks": [{"type": "deliver_mail", "max_retries": 2}]})
        [task] = await r.get_json()
        assert (task["queue"], task["max_retries"]) == ("mail", 2)

        types = (await (await api.get("/api/types")).get_json())["types"]
        assert types == [{
            "type": "deliver_mail",
            "defaults": {"queue": "mail", "priority": 5, "max_retries": 0, "timeout": None,
                         "retry": {"base": 1.0, "cap": 300.0, "factor": 2.0}, "webhook": None,
                         "concurrency_limit": None, "rate_limit": "10/s"},
            "registered": {"queue": "mail", "priority": None, "max_retries": 0, "timeout": None,
                           "retry": None, "webhook": None, "concurrency_limit": None, "rate_limit": "10/s"},
            "local": False, "workers": [w.id], "conflicts": [],
        }]
        [cron] = (await (await api.get("/api/cron")).get_json())["cron"]
        assert (cron["name"], cron["type"], cron["payload"]) == ("mail-digest", "deliver_mail", {"digest": True})
        assert cron["workers"] == [w.id] and not cron["here"] and cron["next_fire"] > 0
        w.stop()
    # Gone with its worker (deregistered on the way out).
    assert (await (await api.get("/api/types")).get_json())["types"] == []
    assert (await (await api.get("/api/cron")).get_json())["cron"] == []
