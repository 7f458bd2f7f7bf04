"""Playing in a real browser: matchmaking to the result screen, a dropped socket mid-match, and a private lobby."""

from __future__ import annotations

import random
import re

import pytest

from games.engine import delta
from tests.browser.conftest import PASSWORD, shot

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.multiprocess, pytest.mark.timeout(120)]

MATCH_URL = re.compile(r".*/matches/\d+/$")
LOBBY_URL = re.compile(r".*/lobbies/[A-Z0-9]{8}/$")


def sign_up(page, name: str) -> None:
    page.goto("/signup/")
    page.fill("#id_username", name)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))
    assert page.locator(".topbar .who").inner_text() == name


def create_lobby(page, game: str, size: int | None = None, *, private: bool = False) -> str:
    """Create a lobby from the lobby browser page; returns its code once the page shows the creator as a member."""
    page.goto("/lobbies/")
    page.wait_for_selector(f"#create-game option[value={game}]", state="attached")
    page.select_option("#create-game", game)
    if size:
        page.fill("#create-size", str(size))
    if private:
        page.check("#create-private")
    page.click("#create")
    page.wait_for_url(LOBBY_URL)
    page.wait_for_selector("#lobby[data-member=true]", state="attached")
    return page.locator("#lobby-code").inner_text()


def queue_for(page, game: str) -> None:
    page.goto("/")
    page.wait_for_selector(f"#play-game option[value={game}]", state="attached")
    page.select_option("#play-game", game)
    page.click("#play")
    # Queued, or already matched and on the way to the match (the matchmaker steps every second).
    page.wait_for_function("() => { const q = document.querySelector('#queue'); return !q || !q.hidden; }")


def wait_running(page) -> None:
    page.wait_for_selector("#match[data-phase=running]", state="attached", timeout=45_000)


def seat_of(page) -> int:
    return page.evaluate("window.gsMatch.client.seat")


def move_own_paddle(page, key: str, beyond: str) -> None:
    """Hold a key until the server's own paddle (not just the prediction) has moved past a line."""
    page.keyboard.down(key)
    try:
        page.wait_for_function(
            f"() => {{ const c = window.gsMatch.client; return c.snapshot.state.paddles[c.seat] {beyond}; }}",
            timeout=15_000,
        )
    finally:
        page.keyboard.up(key)


def leave_match(page) -> None:
    """Leave through the button and its confirmation, as a player does."""
    page.click("#leave")
    page.click("#leave-yes")


def test_two_players_are_matched_play_and_see_their_rating_change(new_page, username):
    alice, bob = new_page(), new_page()
    sign_up(alice, username("alice"))
    sign_up(bob, username("bob"))
    queue_for(alice, "pong")
    alice.wait_for_function("document.querySelector('#queue-timer').textContent !== '0:00'")
    shot(alice, "home-queue")
    queue_for(bob, "pong")
    alice.wait_for_url(MATCH_URL)
    bob.wait_for_url(MATCH_URL)
    assert alice.url == bob.url
    wait_running(alice)
    wait_running(bob)
    assert {seat_of(alice), seat_of(bob)} == {0, 1}
    assert alice.locator("#conn").inner_text() == "Connected"

    # Prediction moves the paddle at once; the server agrees shortly after (its paddles start at 300).
    move_own_paddle(alice, "ArrowUp", "< 200")
    assert alice.evaluate("window.gsMatch.inputs") > 0
    bob.wait_for_function(f"() => window.gsMatch.client.snapshot.state.paddles[{seat_of(alice)}] < 200")
    shot(alice, "match-pong")
    # Protocol v2: after the first keyframe the page was drawn from deltas, with no gap.
    stats = bob.evaluate("({v: window.gsMatch.client.version, ...window.gsMatch.client.stats})")
    assert stats["v"] == 2 and stats["deltas"] > 30 and stats["gaps"] == 0, stats

    leave_match(alice)
    for page, title, reason, sign in (
        (alice, "You lost", "You left the match: a forfeit", "−"),
        (bob, "You won!", "Won by forfeit", "+"),
    ):
        page.wait_for_selector("#result", state="visible")
        assert page.locator("#result-title").inner_text() == title
        assert page.locator("#result-reason").inner_text() == reason
        page.wait_for_function(
            "[...document.querySelectorAll('.rating-change')].every(c => c.textContent.includes('now'))"
        )
        mine = page.locator("#result-rows tr.me .rating-change").inner_text()
        assert mine.startswith(sign), mine
    shot(bob, "result")

    bob.goto("/history/")
    bob.wait_for_selector("#history-rows tr")
    assert "+" in bob.locator("#history-rows tr").first.inner_text()
    shot(bob, "history")
    bob.goto("/leaderboard/")
    bob.select_option("#board-game", "pong")
    bob.wait_for_selector("#board-rows tr.me")
    shot(bob, "leaderboard")
    bob.goto("/profile/")
    bob.wait_for_selector("#ratings li")
    bob.wait_for_selector("#history-rows tr")
    shot(bob, "profile")


def test_a_dropped_socket_reconnects_to_the_same_seat_and_the_match_goes_on(new_page, username, proxy):
    carol, dave = new_page(), new_page()
    sign_up(carol, username("carol"))
    sign_up(dave, username("dave"))
    queue_for(carol, "pong")
    queue_for(dave, "pong")
    carol.wait_for_url(MATCH_URL)
    dave.wait_for_url(MATCH_URL)
    wait_running(carol)
    seat = seat_of(carol)
    tick_before = carol.evaluate("window.gsMatch.client.snapshot.tick")

    # Cut Carol's match socket and keep refusing her for a moment, so the overlay is on screen while she retries.
    match_id = carol.url.rstrip("/").rsplit("/", 1)[1]
    session = next(c["value"] for c in carol.context.cookies() if c["name"] == "sessionid")
    needles = (f"GET /ws/matches/{match_id}/".encode(), session.encode())
    proxy.refuse(*needles)
    assert proxy.cut(*needles) == 1
    carol.wait_for_selector("#overlay:has-text('Reconnecting')", state="visible")
    dave.wait_for_function(f"() => window.gsMatch.client.snapshot.connected[{seat}] === false", timeout=20_000)
    shot(carol, "match-reconnecting")
    proxy.refuse()

    carol.wait_for_function("() => window.gsMatch.client.state === 'open'", timeout=30_000)
    assert carol.locator("#overlay").is_hidden()
    assert seat_of(carol) == seat
    assert carol.evaluate("window.gsMatch.states").count("reconnecting") >= 1
    dave.wait_for_function(f"() => window.gsMatch.client.snapshot.connected[{seat}] === true", timeout=20_000)
    carol.wait_for_function(f"() => window.gsMatch.client.snapshot.tick > {tick_before} + 30")
    assert carol.get_attribute("#match", "data-phase") == "running"
    # Inputs after the reconnect carry on above the acknowledged seq, so the server still takes them.
    move_own_paddle(carol, "ArrowDown", "> 400")
    leave_match(carol)
    dave.wait_for_selector("#result", state="visible")


def test_private_lobby_join_by_code_ready_and_start(new_page, username):
    host, guest, watcher = new_page(), new_page(), new_page()
    guest_name = username("guest")
    sign_up(host, username("host"))
    sign_up(guest, guest_name)
    sign_up(watcher, username("watch"))

    code = create_lobby(host, "arena", 2, private=True)
    host.wait_for_selector("#lobby-visibility:has-text('private')")

    guest.goto("/lobbies/")
    assert guest.locator(f"#lobby-rows:has-text('{code}')").count() == 0
    guest.fill("#join-code", code.lower())
    shot(guest, "lobbies")
    guest.click("#join")
    guest.wait_for_url(LOBBY_URL)
    assert guest.url.endswith(f"/lobbies/{code}/")
    host.wait_for_selector(f"#members li:has-text('{guest_name}')")

    # Chat is shown as text: markup in a message stays visible characters.
    guest.wait_for_selector("#lobby[data-status=open]", state="attached")  # the room's socket sent its state
    guest.fill("#chat-text", "<b>gl hf</b>")
    guest.click("#chat-form button")
    host.wait_for_selector("#chat-log li:has-text('<b>gl hf</b>')")
    assert host.locator("#chat-log b:has-text('gl hf')").count() == 0

    assert host.locator("#start").is_disabled()
    guest.click("#ready")
    host.wait_for_selector(f"#members li:has-text('{guest_name}') .tag.ready")
    shot(host, "lobby-room")
    host.click("#start")
    host.wait_for_url(MATCH_URL)
    guest.wait_for_url(MATCH_URL)

    watcher.goto(host.url)
    watcher.wait_for_selector("#role:has-text('Spectating')")
    assert watcher.locator("#leave").is_hidden()
    wait_running(host)
    # Move, aim and fire for a moment, so that the screenshot shows some action.
    host.keyboard.down("d")
    host.mouse.move(500, 300)
    host.mouse.down()
    host.wait_for_function("() => window.gsMatch.client.snapshot.state.bullets.length >= 2")
    shot(host, "match-arena")
    host.mouse.up()
    host.keyboard.up("d")
    watcher.wait_for_function("() => window.gsMatch.client.snapshot.phase === 'running'")
    assert watcher.evaluate("window.gsMatch.inputs") == 0


def test_client_library_predicts_with_the_servers_movement_math(new_page):
    page = new_page()
    page.goto("/login/")
    result = page.evaluate(
        """async () => {
            const { arena, pong, Predictor } = await import('/static/js/games.js');
            const { backoffDelay } = await import('/static/js/gsclient.js');
            const paddle = new Predictor(pong, 0, 1 / 30);
            paddle.reconcile({ paddles: [300, 300] }, 0);
            paddle.record(1, { dy: -1 });
            paddle.record(2, { dy: -1 });
            const afterTwo = paddle.current.y;
            // The server applied input 1 and stands at 290: replaying input 2 on top gives the same place again.
            paddle.reconcile({ paddles: [290, 300] }, 1);
            const reconciled = paddle.current.y;
            const diagonal = arena.stepOwn({ x: 500, y: 500, aim: 0 }, { dx: 1, dy: 1 }, 0.05);
            const wall = arena.stepOwn({ x: 20, y: 500, aim: 0 }, { dx: -1, dy: 0 }, 0.05);
            const top = pong.stepOwn({ y: 45 }, { dy: -1 }, 1 / 30);
            const delays = [0, 1, 2, 3, 10].map((n) => [backoffDelay(n, { random: () => 0 }), backoffDelay(n, { random: () => 1 })]);
            return { afterTwo, reconciled, diagonal, wall, top, delays };
        }"""
    )
    assert abs(result["afterTwo"] - (300 - 2 * 400 / 30)) < 1e-9
    assert abs(result["reconciled"] - (290 - 400 / 30)) < 1e-9
    step = 200 * 0.05 / 2**0.5  # a diagonal is normalised to length 1, as parse_input does
    assert abs(result["diagonal"]["x"] - (500 + step)) < 1e-9 and abs(result["diagonal"]["y"] - (500 + step)) < 1e-9
    assert result["wall"]["x"] == 15  # clamped at the radius
    assert result["top"]["y"] == 40  # half a paddle from the edge
    assert result["delays"] == [[125, 250], [250, 500], [500, 1000], [1000, 2000], [2500, 5000]]


def test_a_browser_without_websocket_gets_a_clear_message(new_page, username):
    page = new_page()
    sign_up(page, username("old"))
    page.add_init_script("delete window.WebSocket")
    page.goto("/matches/1/")
    page.wait_for_selector("#overlay:has-text('cannot play live games')", state="visible")
    page.goto("/")
    page.wait_for_selector("#play-error:has-text('cannot open WebSocket connections')", state="visible")
    assert page.locator("#play").is_disabled()


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, 1, -3, 2.5, 412.3, 1e-7])
    if kind == 2:
        return rng.choice(["", "a", "running"])
    if kind == 3:
        return rng.randrange(100)
    if kind in (4, 5):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rng.choice("abxy"): random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def test_client_library_applies_the_servers_deltas_and_asks_for_a_keyframe_on_a_gap(new_page):
    """gsclient.js' applyPatch rebuilds what games/engine/delta.py diffed, and a delta on a base the client does not
    hold makes it ask for a keyframe instead of drawing a wrong state."""
    rng = random.Random(12)
    cases = []
    for _ in range(300):
        prev, cur = random_value(rng), random_value(rng)
        if rng.random() < 0.5 and isinstance(prev, (dict, list)):
            cur = delta.apply(prev, delta.diff(prev, random_value(rng))) if isinstance(prev, dict) else prev[:-1] + [7]
        patch = delta.diff(prev, cur)
        if patch is not delta.UNCHANGED:
            cases.append({"prev": prev, "patch": patch, "cur": cur})
    for _ in range(20):  # every player moved: a patch of each item ([3, ...])
        players = [{"seat": seat, "x": rng.random(), "y": rng.random()} for seat in range(4)]
        moved = [{**p, "x": p["x"] + 1} for p in players]
        patch = delta.diff({"players": players}, {"players": moved})
        assert patch["players"][0] == delta.EACH
        cases.append({"prev": {"players": players}, "patch": patch, "cur": {"players": moved}})
    for _ in range(20):  # every seat's ack moved: steps ([4, ...])
        acks = [rng.randrange(100_000) for _ in range(4)]
        moved = [ack + rng.choice((0, 1, 1, 1, 2, -3)) for ack in acks]
        moved[0] = acks[0] + 1
        moved[1] = acks[1] + 1
        moved[2] = acks[2] + 1
        patch = delta.diff({"acks": acks}, {"acks": moved})
        assert patch["acks"][0] == delta.ADD
        cases.append({"prev": {"acks": acks}, "patch": patch, "cur": {"acks": moved}})
    page = new_page()
    page.goto("/login/")
    result = page.evaluate(
        """async (cases) => {
            const { applyPatch, MatchClient } = await import('/static/js/gsclient.js');
            const rebuilt = cases.map((c) => applyPatch(c.prev, c.patch));
            const client = new MatchClient({ matchId: 1, reconnect: false });
            const sent = [];
            client.ws = { readyState: WebSocket.OPEN, send: (m) => sent.push(JSON.parse(m)) };
            const feed = (m) => client._receive({ data: JSON.stringify(m) });
            feed({ type: "snapshot", n: 5, full: true, tick: 9, acks: [1, 2], state: { x: 1 } });
            feed([6, { tick: 10, acks: [1, 2, 1, 4] }]);
            const applied = client.snapshot;
            feed([8, { tick: 12 }]);  // 7 never came
            const afterGap = client.snapshot;
            feed([9, { tick: 13 }]);  // nothing to apply it to
            client.welcome = { input_fields: ["dx", "dy", "fire", "aim"] };
            const compact = [client._inputMessage(5, { dx: 1, dy: 0 }), client._inputMessage(6, { dy: 1 })];
            return { rebuilt, applied, afterGap, sent, stats: client.stats, compact };
        }""",
        cases,
    )
    assert result["rebuilt"] == [c["cur"] for c in cases]
    assert result["applied"] == {"type": "snapshot", "full": True, "tick": 10, "acks": [1, 4], "state": {"x": 1}}
    assert result["afterGap"] == result["applied"]
    assert result["sent"] == [{"type": "keyframe"}]  # once, not once per delta of the gap
    assert result["stats"] == {"keyframes": 1, "deltas": 1, "gaps": 2}
    # Compact inputs in the welcome's field order, trailing fields left out; a missing field before the last given
    # one sends the object form (the server then names the missing field).
    assert result["compact"] == [[5, 1, 0], {"type": "input", "seq": 6, "input": {"dy": 1}}]
