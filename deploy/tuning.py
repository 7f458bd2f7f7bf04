"""Process-wide tuning for a server that runs matches: the garbage collector and the GIL's switch interval.

A full collection stops every match in the process for as long as it walks the heap: ~90 ms for the ~200,000
objects Django and the apps leave behind at start-up, ~200 ms once a few hundred thousand more had piled up. Both
launchers (deploy/daphne_ws.py, deploy/uvicorn_ws.py) call tune_runtime() once the application is loaded.
"""

from __future__ import annotations

import gc
import sys

# Young collections at the default 700 allocations promoted the objects of inputs waiting for their tick (a thousand
# at a time at 1,000 players), and those promotions set off a full collection every few seconds. At 10,000 young
# collections are rarer (each ~1 ms) and full ones come every half minute or so (docs/benchmarks.md).
GC_YOUNG_THRESHOLD = 10_000

# Database calls run in one worker thread (Channels' sync_to_async). With the event loop busy, that thread waited up
# to the default 5 ms for the GIL at every step of every call, and a burst of connects (two or three calls each)
# queued past daphne's 5 s handshake timeout. The interval only matters while another thread waits for the GIL.
SWITCH_INTERVAL_SECONDS = 0.0005

_tuned = False


def tune_runtime() -> None:
    """Freeze what is loaded (it lives as long as the process: full collections skip it), raise the young
    generation's threshold, and shorten the GIL's switch interval. Once per process; later calls do nothing."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
