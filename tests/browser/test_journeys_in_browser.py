"""Player journeys around a match, with several players in their own browsers (issue 16): the connection badge during
an outage, leaving on purpose only, a ban told as a ban."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import PASSWORD, shot
from tests.browser.test_play_in_browser import MATCH_URL, queue_for, sign_up, wait_running
from tests.browser.test_watch_in_browser import make_operator

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.multiprocess, pytest.mark.timeout(120)]


def matched(new_page, username, game: str = "pong"):
    """Two signed-up players in a running match of `game`, each in their own browser context."""
    first, second = new_page(), new_page()
    names = username("ann"), username("ben")
    sign_up(first, names[0])
    sign_up(second, names[1])
    queue_for(first, game)
    queue_for(second, game)
    for page in (first, second):
        page.wait_for_url(MATCH_URL)
        wait_running(page)
    return first, second, names


def match_socket(page) -> tuple[bytes, bytes]:
    """Needles for the CuttableProxy that pick this page's match socket."""
    match_id = page.url.rstrip("/").rsplit("/", 1)[1]
    session = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    return f"GET /ws/matches/{match_id}/".encode(), session.encode()


def test_the_badge_says_when_snapshots_stop_and_leaving_takes_a_confirmation(new_page, username, proxy):
    ann, ben, _ = matched(new_page, username)
    assert ann.locator("#conn").inner_text() == "Connected"

    # Snapshots stop with the socket still open: within about a second the badge says so, and the old ping goes.
    proxy.hold(*match_socket(ann))
    held_at = time.monotonic()
    try:
        ann.wait_for_selector("#conn[data-state=stalled]", timeout=5_000)
        noticed = time.monotonic() - held_at
        assert ann.evaluate("window.gsMatch.client.state") == "open"
        assert ann.locator("#conn").inner_text().startswith("No updates for")
        assert ann.locator("#ping").inner_text() == "–"
        shot(ann, "match-stalled")
    finally:
        proxy.hold()
    assert noticed < 2.0, noticed
    ann.wait_for_selector("#conn[data-state=open]", timeout=5_000)
    assert ann.locator("#conn").inner_text() == "Connected"

    # The space bar on a focused Leave button (a player firing after clicking it) does nothing.
    ann.focus("#leave")
    ann.keyboard.press(" ")
    ann.wait_for_timeout(300)
    assert ann.locator("#leave-confirm").is_hidden()
    # Leave asks first; "Keep playing" keeps playing.
    ann.click("#leave")
    assert ann.locator("#leave-confirm").is_visible()
    ann.keyboard.press(" ")  # the focus is on "Keep playing", and space does not press it either
    assert ann.locator("#leave-confirm").is_visible()
    shot(ann, "match-leave-confirm")
    ann.click("#leave-no")
    assert ann.locator("#leave-confirm").is_hidden()
    assert ann.get_attribute("#match", "data-phase") == "running"
    assert ben.get_attribute("#match", "data-phase") == "running"

    ann.click("#leave")
    ann.click("#leave-yes")
    for page, title, reason in ((ann, "You lost", "You left the match: a forfeit"), (ben, "You won!", "Won by forfeit")):
        page.wait_for_selector("#result", state="visible")
        assert page.locator("#result-title").inner_text() == title
        assert page.locator("#result-reason").inner_text() == reason


def test_a_player_banned_during_a_match_is_told_they_were_banned(new_page, username, server):
    ann, ben, (ann_name, _) = matched(new_page, username)
    operator, op_name = new_page(), username("op")
    make_operator(server, op_name)
    operator.goto(f"/admin/login/?next=/admin/accounts/user/%3Fq%3D{ann_name}")
    operator.fill("#id_username", op_name)
    operator.fill("#id_password", PASSWORD)
    operator.click("input[type=submit]")
    operator.check("input[name=_selected_action]")
    operator.select_option("select[name=action]", "ban_users")
    operator.click("button[name=index]")
    operator.wait_for_selector("text=Banned 1 user(s).")

    ann.wait_for_selector("#overlay:has-text('You have been banned')", state="visible", timeout=10_000)
    assert "Your account has been banned." in ann.locator("#overlay").inner_text()
    assert ann.locator("#conn").inner_text() == "Disconnected"
    shot(ann, "match-banned")
