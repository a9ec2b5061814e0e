"""The floor of benchmarks/http_wrk.py with the keep-alive idle timer the
Nexq API installs in Hypercorn (nexq.api.idle_timer): what the raw ASGI
app costs on the same server as ``nexq run``'s API.
``python -m hypercorn -k trio -b 127.0.0.1:PORT raw_asgi_idle:app``
(run with the project on the import path)."""

import gc

from raw_asgi import app

from nexq.api.idle_timer import install

if not install():
    raise SystemExit("nexq.api.idle_timer does not know this Hypercorn")
# Importing nexq.api loads Quart and the whole package, which raw_asgi does
# not: frozen (as nexq's serving processes freeze their start-up heap), full
# collections do not walk it, so they do not stall requests (p99 doubled).
gc.freeze()

__all__ = ["app"]
