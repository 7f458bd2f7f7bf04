"""Netcode under latency and jitter (issue 13): two players behind a latency proxy (tests/browser/latency.py) play a
pong and then an arena match; the page records what it draws each frame (window.gsMatch.frames), and the test checks
that the own avatar moves within 2 frames of a key, is never corrected by a whole tick's movement while the key is
held, stays where it stopped after the release, and that the other player and the ball move without stutter.
Run with -s to see the numbers docs/client.md quotes."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from tests.browser.conftest import PASSWORD
from tests.browser.latency import LatencyProxy

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.multiprocess, pytest.mark.timeout(150)]

# One way, each direction: (latency ms, jitter ms).
LATENCIES = [(0, 0), (50, 10), (100, 20)]
SETTLE_SECONDS = 1.5  # of play before the first key: the pacer finds its lead, the interpolator its delay
HOLD_SECONDS = {"pong": 0.4, "arena": 0.6}
FROZEN_MS = 100  # a page that drew no frame for this long was frozen (busy cores), not slowed by the network
REST_SECONDS = 0.9  # after each release: longer than a round trip plus the interpolation delay at 100 +- 20 ms
GAMES = {
    # tick rate, speed (units/s), key presses in order (pong: up and down; arena: the four directions)
    "pong": (30, 400.0, ["ArrowUp", "ArrowDown", "ArrowDown", "ArrowUp"]),
    "arena": (20, 200.0, ["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"]),  # reordered by arena_keys
}
INSTALL_MARKS = """() => {
    const g = window.gsMatch;
    g.frames = [];
    g.record = true;
    g.marks = [];
    for (const kind of ['keydown', 'keyup']) {
        window.addEventListener(kind, (e) => { if (!e.repeat) g.marks.push([kind, e.timeStamp]); }, true);
    }
    g.before = { corrections: g.predictor ? g.predictor.stats.corrections : 0,
                 overruns: g.interpolator.stats.overruns };
}"""
COLLECT = """() => {
    const g = window.gsMatch;
    g.record = false;
    return {
        frames: g.frames, marks: g.marks || [], seat: g.client.seat,
        corrections: g.predictor ? g.predictor.corrections : [],
        overruns: g.interpolator.stats.overruns - g.before.overruns,
        pacer: g.pacer ? { ...g.pacer.stats, lead: g.pacer.leadTicks } : null,
        delayMs: g.interpolator.delayMs,
    };
}"""


@pytest.fixture(scope="module", params=LATENCIES, ids=lambda p: f"{p[0]}ms")
def latency(request, server):
    delay, jitter = request.param
    proxy = LatencyProxy(server[1].upstream_port, delay_ms=delay, jitter_ms=jitter)
    yield proxy, delay, jitter
    proxy.close()


def log_in(context_page, base: str, name: str) -> None:
    context_page.goto(f"{base}/login/")
    context_page.evaluate(
        """async ([name, password]) => {
            const { ApiClient } = await import('/static/js/gsclient.js');
            await new ApiClient().sessionLogin(name, password);
        }""",
        [name, PASSWORD],
    )


def own_position(frame: dict, game: str) -> tuple[float, ...] | None:
    own = frame["own"]
    if own is None:
        return None
    return (own["y"],) if game == "pong" else (own["x"], own["y"])


def other_position(frame: dict, game: str, seat: int) -> tuple[float, ...] | None:
    view = frame["view"]
    if game == "pong":
        return (view["paddles"][seat],)
    p = next((p for p in view["players"] if p["seat"] == seat), None)
    return (p["x"], p["y"]) if p and p["alive"] else None


def distance(a, b) -> float:
    return math.dist(a, b)


def held_spans(marks: list) -> list[tuple[float, float]]:
    spans, down = [], None
    for kind, at in marks:
        if kind == "keydown":
            down = at
        elif down is not None:
            spans.append((down, at))
            down = None
    return spans


def analyse_own(data: dict, game: str) -> dict:
    """What the player holding the keys saw of their own avatar."""
    rate, speed, _ = GAMES[game]
    tick_ms = 1000 / rate
    tick_move = speed / rate
    frames = [f for f in data["frames"] if own_position(f, game) is not None]
    times = [f["t"] for f in frames]
    out = {"reaction_frames": [], "held_corrections": 0, "jumps": 0, "max_excess": 0.0, "after_release_moves": [],
           "held_seconds": 0.0, "frozen_presses": 0, "corrections": [round(size, 2) for at, size in data["corrections"] if at >= times[0]]}
    spans = held_spans(data["marks"])
    for n, (down, up) in enumerate(spans):
        end = spans[n + 1][0] if n + 1 < len(spans) else times[-1]
        # A press during which the page itself froze (no frame for FROZEN_MS: the machine's cores were busy
        # elsewhere) is not judged: the server rightly went on with the held key, and no netcode can hide that.
        window = [t for t in times if down - 100 <= t <= end]
        if any(b - a > FROZEN_MS for a, b in pairwise(window)):
            out["frozen_presses"] += 1
            continue
        out["held_seconds"] += (up - down) / 1000
        before = [f for f in frames if f["t"] <= down]
        after = [f for f in frames if f["t"] > down]
        if not before or not after:
            continue
        base = own_position(before[-1], game)
        moved_at = next((i for i, f in enumerate(after) if distance(own_position(f, game), base) > 0.5), None)
        out["reaction_frames"].append(None if moved_at is None else moved_at + 1)
        # While held: the predictor's corrections of half a tick's movement or more, and drawn steps that went half
        # a tick's movement further than the avatar moves in that time (what a snapped correction looks like).
        out["held_corrections"] += sum(
            1 for at, size in data["corrections"] if down <= at <= up and size >= tick_move / 2
        )
        held = [f for f in after if f["t"] <= up]
        for a, b in pairwise(held):
            excess = distance(own_position(a, game), own_position(b, game)) - speed * (b["t"] - a["t"]) / 1000
            out["max_excess"] = round(max(out["max_excess"], excess), 2)
            if excess > tick_move / 2:
                out["jumps"] += 1
        # After release: the avatar stops (three frames without a move) within a few ticks, then stays there until
        # the next key: the old bug moved it again about a round trip later.
        after_up = [f for f in frames if up < f["t"] <= end]
        stop_at = next(
            (i for i in range(len(after_up) - 3)
             if max(distance(own_position(after_up[i], game), own_position(f, game)) for f in after_up[i + 1 : i + 4]) <= 0.05),
            None,
        )
        if stop_at is None or after_up[stop_at]["t"] > up + 4 * tick_ms + 100:
            out["after_release_moves"].append(None)
            continue
        stop = own_position(after_up[stop_at], game)
        out["after_release_moves"].append(round(max(distance(own_position(f, game), stop) for f in after_up[stop_at:]), 2))
    return out


def analyse_other(data: dict, game: str, seat: int, speed: float) -> dict:
    """What a page drew of a player it does not predict (and, in pong, of the ball): stalls are frames in which a
    moving thing stood still between two frames in which it moved; jumps, steps far faster than it can move."""
    track = [(f["t"], other_position(f, game, seat)) for f in data["frames"]]
    track = [(t, p) for t, p in track if p is not None]
    stalls = jumps = 0
    for (t0, a), (t1, b) in pairwise(track):
        if distance(a, b) - speed * (t1 - t0) / 1000 > speed / GAMES[game][0] / 2:
            jumps += 1
    # Frames drawn less than 8 ms apart (a page catching up) are too close to tell moving from still.
    track = [item for n, item in enumerate(track) if n == 0 or item[0] - track[n - 1][0] >= 8]
    moving = [distance(a, b) > 0.5 for (_, a), (_, b) in pairwise(track)]
    for before, still, after in zip(moving, moving[1:], moving[2:], strict=False):
        if before and not still and after:
            stalls += 1
    out = {"stalls": stalls, "jumps": jumps}
    if game == "pong":
        drawn = [f for n, f in enumerate(data["frames"]) if n == 0 or f["t"] - data["frames"][n - 1]["t"] >= 8]
        balls = [tuple(f["view"]["ball"][:2]) for f in drawn]
        ball_moving = [0.5 < distance(a, b) < 200 for a, b in pairwise(balls)]
        out["ball_stalls"] = sum(
            1 for before, still, after in zip(ball_moving, ball_moving[1:], ball_moving[2:], strict=False) if before and not still and after
        )
    return out


def arena_keys(mover) -> list[str]:
    """The four directions in an order that walks a square away from the other player: never a push between the
    two (which prediction leaves to the server), whatever the spawn points."""
    own, other = mover.evaluate(
        """() => { const c = window.gsMatch.client; const ps = c.snapshot.state.players;
                    return [ps.find((p) => p.seat === c.seat), ps.find((p) => p.seat !== c.seat)]; }"""
    )
    across = "ArrowRight" if other["x"] <= own["x"] else "ArrowLeft"
    along = "ArrowDown" if other["y"] <= own["y"] else "ArrowUp"
    back = {"ArrowRight": "ArrowLeft", "ArrowLeft": "ArrowRight", "ArrowDown": "ArrowUp", "ArrowUp": "ArrowDown"}
    return [across, along, back[across], back[along]]


def play_and_measure(mover, watcher, game: str) -> tuple[dict, dict]:
    for page in (mover, watcher):
        page.wait_for_selector("#match[data-phase=running]", state="attached", timeout=30_000)
    mover.wait_for_timeout(SETTLE_SECONDS * 1000)
    keys = arena_keys(mover) if game == "arena" else GAMES[game][2]
    for page in (mover, watcher):
        page.evaluate(INSTALL_MARKS)
    mover.wait_for_timeout(300)  # frames from before the first key
    for key in keys:
        mover.keyboard.down(key)
        mover.wait_for_timeout(HOLD_SECONDS[game] * 1000)
        mover.keyboard.up(key)
        mover.wait_for_timeout(REST_SECONDS * 1000)
    return mover.evaluate(COLLECT), watcher.evaluate(COLLECT)


# Reruns: what the page draws depends on when the machine runs two pages, the proxy and the server on two cores. A
# stall of a tick (a correction, a pause) happens in about one run in three at 100 +- 20 ms even with nothing else on
# the machine; a broken tick rule or predictor fails every run (docs/client.md).
@pytest.mark.flaky(reruns=2)
def test_own_avatar_reacts_at_once_is_never_corrected_and_others_stay_smooth(latency, server, new_page, username):
    proxy, delay, jitter = latency
    cluster, cuttable = server
    port = cuttable.upstream_port
    base = f"http://127.0.0.1:{proxy.port}"
    names = [username("nc"), username("nc")]
    tokens = {name: cluster.register(port, name) for name in names}
    mover, watcher = new_page(), new_page()
    for page, name in ((mover, names[0]), (watcher, names[1])):
        log_in(page, base, name)
    report = {}
    for game in ("pong", "arena"):
        match = cluster.new_match(port, game, names, tokens)
        for page in (mover, watcher):
            page.goto(f"{base}/matches/{match['id']}/")
        mine, theirs = play_and_measure(mover, watcher, game)
        seat = mine["seat"]
        own = analyse_own(mine, game)
        seen = analyse_other(theirs, game, seat, GAMES[game][1])
        report[game] = {**own, **{f"other_{k}": v for k, v in seen.items()}, "overruns": [mine["overruns"], theirs["overruns"]],
                        "pacer": mine["pacer"], "delay_ms": round(theirs["delayMs"] or 0, 1)}
        print(f"\n{delay} +- {jitter} ms, {game}: {report[game]}")
        mover.click("#leave")
        mover.click("#leave-yes")
        watcher.wait_for_selector("#result", state="visible")
    for game, r in report.items():
        where = f"{game} at {delay} +- {jitter} ms: {r}"
        # Every press judged, but for those the page froze through; at least half of them judged.
        assert len(r["reaction_frames"]) + r["frozen_presses"] == len(GAMES[game][2]), where
        assert r["frozen_presses"] <= len(GAMES[game][2]) // 2, where
        assert all(n is not None and n <= 2 for n in r["reaction_frames"]), where
        assert r["held_corrections"] == 0 and r["jumps"] == 0, where
        assert all(moved is not None and moved <= 0.5 for moved in r["after_release_moves"]), where
        assert r["other_jumps"] == 0, where
        # A frame in which the other player or the ball stood still between two in which they moved: only while the
        # render clock waited for a snapshot later than any of the last 3 s (an overrun, below), never otherwise.
        assert r["other_stalls"] + r.get("other_ball_stalls", 0) <= r["overruns"][1], where
        # A snapshot later than any in the last 3 s (a busy machine: 2 cores for two pages, daphne, the proxy and
        # whatever else runs) holds the render clock until it comes: a pause, not a skip. A few in 8 s are load (up
        # to 5 seen while load tests ran beside); a delay that did not follow the jitter would give one every few
        # ticks (the fixed two-tick delay skipped 32 times in 23 s at 100 +- 20 ms).
        assert max(r["overruns"]) <= 6, where


def test_prediction_skips_the_inputs_the_servers_repeats_applied_and_smooths_a_correction(new_page):
    page = new_page()
    page.goto("/login/")
    result = page.evaluate(
        """async () => {
            const { pong, Predictor } = await import('/static/js/games.js');
            const step = 400 / 30;
            const run = (owed) => {
                const p = new Predictor(pong, 0, 1 / 30);
                p.reconcile({ paddles: [300, 300] }, 0, 0);
                for (const seq of [1, 2, 3]) p.record(seq, { dy: -1 }, seq * 33, seq * 33 + 33);
                const predicted = p.current.y;
                // The server applied input 1, then ran dry and repeated it: the paddle moved twice, ack 1.
                p.reconcile({ paddles: [300 - 2 * step, 300] }, 1, 120, owed);
                return { predicted, after: p.current.y, corrections: p.stats.corrections,
                         drawnAt: p.at(120).y, drawnLater: p.at(260).y };
            };
            return { owed: run(1), ignored: run(0) };
        }"""
    )
    step = 400 / 30
    owed, ignored = result["owed"], result["ignored"]
    assert abs(owed["predicted"] - (300 - 3 * step)) < 1e-9
    # Input 2 is the repeat: only input 3 is replayed, and the prediction stands.
    assert abs(owed["after"] - owed["predicted"]) < 1e-9 and owed["corrections"] == 0
    # Replaying input 2 as well would put the paddle a tick further than the server will: a correction, drawn
    # from where the paddle was and faded out over 100 ms, not snapped.
    assert abs(ignored["after"] - (300 - 4 * step)) < 1e-9 and ignored["corrections"] == 1
    assert abs(ignored["drawnAt"] - owed["drawnAt"]) < 1e-9
    assert abs(ignored["drawnLater"] - ignored["after"]) < 1e-9


PACER_SIMULATION = """async ([oneWay, jitter, seconds]) => {
    // A simulated server ticking at 30 Hz on the page's clock, a network of oneWay +- jitter ms each way (in
    // order), and the pacer on fake timers: what tick each input arrives for, and how the seat's buffer stood.
    const { InputPacer, TickClock } = await import('/static/js/gsclient.js');
    const dt = 1000 / 30;
    let now = 0;
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const events = [];  // [at, order, fn]
    let order = 0;
    const at = (time, fn) => { events.push([time, order++, fn]); return order; };
    const timers = {
        setTimeout: (fn, ms) => at(now + ms, fn),
        clearTimeout: (id) => { const i = events.findIndex((e) => e[1] === id - 1); if (i >= 0) events.splice(i, 1); },
    };
    const clock = new TickClock(30);
    const buffer = [];
    let lastUp = 0, lastDown = 0, seq = 0, started = false, owed = 0, applied = false;
    const log = [];
    const pacer = new InputPacer({
        clock, seat: 0, timers, now: () => now, sample: () => ({ dy: 1 }),
        send: () => { seq += 1; const s = seq; lastUp = Math.max(lastUp, now + oneWay + (random() * 2 - 1) * jitter);
                      at(lastUp, () => buffer.push(s)); return s; },
    });
    for (let tick = 1; tick <= seconds * 30; tick++) {
        at(tick * dt, () => {
            // The engine's take_inputs: one input a tick; a dry tick is owed to the next (equal) input.
            const waiting = buffer.length;
            let credit = owed;
            owed = 0;
            while (credit && buffer.length) { buffer.shift(); credit -= 1; }
            if (buffer.length) { buffer.shift(); applied = true; }
            else if (applied) owed = Math.min(3, credit + 1);
            const snapshot = { tick, waiting: [owed ? -owed : waiting] };
            lastDown = Math.max(lastDown, now + oneWay + (random() * 2 - 1) * jitter);
            at(lastDown, () => {
                clock.push(tick, now);
                if (!started) { started = true; pacer.start(0); }  // knowing nothing of the round trip
                pacer.observe(snapshot, now);
                log.push([now, waiting]);
            });
        });
    }
    at(seconds * 1000, () => pacer.stop());  // the last tick
    while (events.length) {
        events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        const [time, , fn] = events.shift();
        now = time;
        fn();
    }
    pacer.stop();
    const late = log.filter(([t]) => t > (seconds - 4) * 1000);
    return { sent: pacer.stats.sent, dry: pacer.stats.dry, lead: pacer.leadTicks,
             lastDry: late.filter(([, w]) => w <= 0).length, minWaiting: Math.min(...late.map(([, w]) => w)),
             maxWaiting: Math.max(...late.map(([, w]) => w)), ticks: seconds * 30 };
}"""


@pytest.mark.parametrize(("one_way", "jitter"), [(0, 0), (50, 10), (100, 20)])
def test_the_pacer_sends_one_input_per_server_tick_and_keeps_the_buffer_from_running_dry(new_page, one_way, jitter):
    page = new_page()
    page.goto("/login/")
    r = page.evaluate(PACER_SIMULATION, [one_way, jitter, 12])
    # After settling: every tick found an input waiting, and not many more than needed.
    assert r["lastDry"] == 0 and 1 <= r["minWaiting"] and r["maxWaiting"] <= 5, r
    # One input per tick over the whole run: the first went out a round trip after play began, the last ones are
    # for ticks up to the lead ahead.
    rtt_ticks = 2 * (one_way + jitter) / (1000 / 30)
    assert r["ticks"] - rtt_ticks - 3 <= r["sent"] <= r["ticks"] + r["lead"] + 2, r
