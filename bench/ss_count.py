"""Wire bytes per player-tick of another server's connections (Colyseus in ../shared/peers), counted from the kernel
(`ss -tin`) between two moments inside its bench window, the way bench/load.py counts ours from TCP_INFO: payload both
ways plus 52 bytes per segment (docs/benchmarks.md, "How bytes were counted"). Loopback only.

    python3 bench/ss_count.py PORT START_DELAY SECONDS [TICK_HZ] &   # then start the server's bench on PORT
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

SEGMENT_OVERHEAD = 52  # IPv4 20 + TCP with timestamps 32, as the loopback counts each segment


def _counter(line: str, name: str) -> int:
    found = re.search(rf"\b{name}:(\d+)", line)
    return int(found.group(1)) if found else 0


def sample(port: int) -> dict[str, tuple[int, int]]:
    """Per established connection on the port (by peer address): (payload bytes both ways, segments both ways)."""
    out = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=False).stdout
    conns: dict[str, tuple[int, int]] = {}
    peer = ""
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            peer = line.split()[-1]
        else:
            conns[peer] = (_counter(line, "bytes_sent") + _counter(line, "bytes_received"),
                           _counter(line, "segs_out") + _counter(line, "segs_in"))
    return conns


def main(argv: list[str]) -> None:
    port, delay, span = int(argv[0]), float(argv[1]), float(argv[2])
    hz = float(argv[3]) if len(argv) > 3 else 20.0
    time.sleep(delay)
    first, started = sample(port), time.monotonic()
    time.sleep(span)
    last, ended = sample(port), time.monotonic()
    common = [peer for peer in first if peer in last]
    if not common:
        raise SystemExit(f"no connection on port {port} was open at both moments")
    payload = sum(last[p][0] - first[p][0] for p in common)
    segments = sum(last[p][1] - first[p][1] for p in common)
    player_ticks = len(common) * hz * (ended - started)
    print(f"conns {len(common)} payload/pt {payload / player_ticks:.1f} segs/pt {segments / player_ticks:.2f} "
          f"wire/pt {(payload + SEGMENT_OVERHEAD * segments) / player_ticks:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
