"""A plain script: enqueue a batch, wait for the results.

    python -m examples.script               # with a worker: nexq worker --app examples.tasks:app
"""

from __future__ import annotations

from examples.tasks import app


def main() -> None:
    client = app.client()  # blocking; the tasks app's store, namespace and defaults
    handles = client.enqueue_many([("resize", {"id": i, "width": 640 + i}) for i in range(10)])
    for handle in handles:
        print(handle.id, handle.result(timeout=60))
    client.close()


if __name__ == "__main__":
    main()
