"""Operating and watching in a real browser: the live-match console steering a match two players play while a third
user watches it from the Watch page, a finished match's page offering its replay, and the replay page (seek, play,
pause, speed, timeline)."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import PASSWORD, shot
from tests.browser.test_play_in_browser import MATCH_URL, queue_for, sign_up, wait_running

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.multiprocess, pytest.mark.timeout(120)]


def make_operator(server, name: str) -> None:
    cluster, _ = server
    cluster.manage("shell", "-c", f"from gameserver.accounts.models import User; "
                                  f"User.objects.create_superuser({name!r}, password={PASSWORD!r})")


def admin_login(page, name: str) -> None:
    page.goto("/admin/login/?next=/admin/games/match/live/")
    page.fill("#id_username", name)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/games/match/live/$"))


def finished_pong_match(server, alice: str, bob: str) -> int:
    """A full-length pong match recorded for two new users (random inputs until the rules end it)."""
    cluster, _ = server
    out = cluster.manage("shell", "-c", (
        "from gameserver.accounts.models import User\n"
        "from tests.games.test_replay_api import finished_match\n"
        f"users = [User.objects.create_user(n, password={PASSWORD!r}) for n in ({alice!r}, {bob!r})]\n"
        "print(finished_match('pong', users, seed=11).pk)\n"
    ))
    return int(out.strip().splitlines()[-1])


def canvas_pixels(page) -> str:
    return page.evaluate("document.querySelector('#field').toDataURL()")


def test_the_console_lists_a_live_match_sends_a_notice_and_ends_it_with_its_result(new_page, username, server):
    alice, bob, operator = new_page(), new_page(), new_page()
    alice_name, bob_name, op_name = username("alice"), username("bob"), username("op")
    sign_up(alice, alice_name)
    sign_up(bob, bob_name)
    make_operator(server, op_name)
    queue_for(alice, "pong")
    queue_for(bob, "pong")
    alice.wait_for_url(MATCH_URL)
    wait_running(alice)
    match_id = alice.url.rstrip("/").rsplit("/", 1)[1]

    admin_login(operator, op_name)
    row = operator.locator(f"#live-table tr[data-match='{match_id}']")
    row.wait_for()
    operator.wait_for_function(
        f"() => document.querySelector(\"#live-table tr[data-match='{match_id}'] .phase\").textContent === 'running'")
    assert row.locator(".player").nth(0).inner_text().count("connected") == 1
    assert alice_name in row.inner_text() and bob_name in row.inner_text()

    # A third user finds it on the Watch page and joins as a spectator; the console counts them.
    watcher = new_page()
    sign_up(watcher, username("carol"))
    watcher.goto("/watch/")
    listed = watcher.locator(f"#watch-rows tr[data-match='{match_id}']")
    listed.wait_for()
    assert alice_name in listed.inner_text() and "playing" in listed.inner_text()
    shot(watcher, "watch")
    listed.locator("a").click()
    watcher.wait_for_url(MATCH_URL)
    watcher.wait_for_function("() => document.querySelector('#role').textContent === 'Spectating'")
    watcher.wait_for_selector("#match[data-phase=running]", state="attached")
    operator.wait_for_function(
        f"() => document.querySelector(\"#live-table tr[data-match='{match_id}'] .spectators\").textContent === '1'")
    shot(operator, "console")

    row.locator("input[name=text]").fill("Tournament final starts at 8")
    row.locator("form.notice button").click()
    alice.wait_for_selector("#notice:has-text('Tournament final starts at 8')", state="visible")
    assert "Operator: Tournament final starts at 8" in alice.locator("#events").inner_text()

    operator.on("dialog", lambda dialog: dialog.accept())
    row.locator("button.end-result").click()
    for page in (alice, bob, watcher):
        page.wait_for_selector("#result", state="visible")
        assert page.locator("#result-reason").inner_text().startswith("Ended by an admin")
    operator.wait_for_function(f"() => !document.querySelector(\"#live-table tr[data-match='{match_id}']\")")

    # The finished match's page: its result and the replay, no empty field.
    alice.goto(f"/matches/{match_id}/")
    alice.wait_for_selector("#result", state="visible")
    assert alice.locator(".stage").is_hidden()
    alice.click("#replay-link")
    alice.wait_for_function("() => window.gsReplay && window.gsReplay.ready")
    assert alice.locator("#ticks").inner_text() != "–"


def test_the_replay_page_seeks_plays_pauses_and_jumps_to_timeline_events(new_page, username, server):
    viewer = new_page()
    name = username("viewer")
    sign_up(viewer, name)
    match_id = finished_pong_match(server, username("p1"), username("p2"))
    viewer.goto(f"/matches/{match_id}/replay/")
    viewer.wait_for_function("() => window.gsReplay.ready && window.gsReplay.drawnTick === 0")
    ticks = int(viewer.locator("#ticks").inner_text())
    assert ticks > 200  # more than one chunk of frames (CHUNK_TICKS)
    at_start = canvas_pixels(viewer)

    # Seek far into the match (another chunk of frames): what is drawn changes, and the tick shown follows.
    target = ticks - 20
    viewer.evaluate(f"() => {{ const s = document.querySelector('#seek'); s.value = {target}; "
                    "s.dispatchEvent(new Event('input')); }")
    viewer.wait_for_function(f"() => window.gsReplay.drawnTick === {target}")
    assert viewer.locator("#tick").inner_text() == str(target)
    assert canvas_pixels(viewer) != at_start
    scores_late = viewer.locator("#scoreboard").inner_text()

    # Back to the start: the first picture again, and the score at 0.
    viewer.evaluate("() => { const s = document.querySelector('#seek'); s.value = 0; s.dispatchEvent(new Event('input')); }")
    viewer.wait_for_function("() => window.gsReplay.drawnTick === 0")
    assert canvas_pixels(viewer) == at_start
    assert viewer.locator("#scoreboard").inner_text() != scores_late

    # Play at 4x, pause: the ticks moved on, then stay.
    viewer.select_option("#speed", "4")
    viewer.click("#play")
    viewer.wait_for_function("() => window.gsReplay.drawnTick > 60")
    viewer.click("#play")
    paused_at = viewer.evaluate("window.gsReplay.drawnTick")
    viewer.wait_for_timeout(300)
    assert viewer.evaluate("window.gsReplay.drawnTick") == paused_at

    # The timeline: a point's entry jumps to its tick.
    entry = viewer.locator("#timeline li[data-tick]").nth(2)
    tick = int(entry.get_attribute("data-tick"))
    entry.locator("button").click()
    viewer.wait_for_function(f"() => window.gsReplay.drawnTick === {tick}")
    assert viewer.locator("#marks span").count() == viewer.locator("#timeline li[data-tick]").count()
    shot(viewer, "replay")
