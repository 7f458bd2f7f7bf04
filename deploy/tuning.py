"""Process-wide tuning for a server that runs matches: the garbage collector.

A full collection stops every match in the process for as long as it walks the heap: ~90 ms for the ~200,000
objects Django and the apps leave behind at start-up, ~200 ms once a few hundred thousand more had piled up. Both
launchers (deploy/daphne_ws.py, deploy/uvicorn_ws.py) call tune_gc() once the application is loaded.
"""

from __future__ import annotations

import gc

# Young collections at the default 700 allocations promoted the objects of inputs waiting for their tick (a thousand
# at a time at 1,000 players), and those promotions set off a full collection every few seconds. At 10,000 young
# collections are rarer (each ~1 ms) and full ones come every half minute or so (docs/benchmarks.md).
GC_YOUNG_THRESHOLD = 10_000

_tuned = False


def tune_gc() -> None:
    """Freeze what is loaded (it lives as long as the process: full collections skip it) and raise the young
    generation's threshold. Once per process; later calls do nothing."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
