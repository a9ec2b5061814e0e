"""The app of benchmarks/processes.py: a no-op handler and one that holds
the CPU (and its process's trio loop) for 1 ms, like real CPU-bound work.

    nexq worker --processes N --store redis://127.0.0.1:PORT --app benchmarks.processes_app:app
"""

from __future__ import annotations

import time
from typing import Any

from nexq import Nexq

app = Nexq()


@app.task("noop", max_retries=0)
async def noop(payload: Any) -> None:
    return None


@app.task("cpu_1ms", max_retries=0)
async def cpu_1ms(payload: Any) -> None:
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass
