"""Player journeys, with several players in their own browsers (issue 16): the connection badge during an outage, pong
paused for a dropped player, leaving on purpose only, a ban told as a ban, page titles and errors, and queueing that
follows the player from page to page and stops when they leave."""

from __future__ import annotations

import re
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


def test_the_badge_says_when_snapshots_stop_pong_pauses_for_a_drop_and_leaving_takes_a_confirmation(
    new_page, username, proxy
):
    ann, ben, (ann_name, ben_name) = matched(new_page, username)
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

    # Ben drops: pong pauses for him (who, and how long he has to come back), and resumes with a countdown.
    needles = match_socket(ben)
    proxy.refuse(*needles)
    try:
        assert proxy.cut(*needles) == 1
        ann.wait_for_selector("#match[data-phase=paused]", state="attached", timeout=10_000)
        ann.wait_for_function("document.querySelector('#phase').textContent.includes('s to come back')")
        assert ann.locator("#phase").inner_text().startswith(f"paused: {ben_name} is offline, ")
        ball = ann.evaluate("window.gsMatch.client.snapshot.state.ball")
        ann.wait_for_timeout(1_000)
        assert ann.evaluate("window.gsMatch.client.snapshot.state.ball") == ball  # nothing moves meanwhile
        shot(ann, "match-paused")
    finally:
        proxy.refuse()
    ben.wait_for_function("() => window.gsMatch.client.state === 'open'", timeout=30_000)
    ann.wait_for_selector("#match[data-phase=countdown]", state="attached", timeout=10_000)
    wait_running(ann)
    assert ann.evaluate("window.gsMatch.client.snapshot.removed") == [False, False]

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
        # The leaver is marked beside their name in the results, under the table's own headings.
        leaver_row = page.locator("#result-rows tr", has=page.locator(".left-match"))
        assert leaver_row.count() == 1 and leaver_row.locator("td").count() == 4
        assert leaver_row.locator("td").nth(1).inner_text() == f"{ann_name} (left)"


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
    ann.reload()  # the session no longer logs in: the login page says why
    ann.wait_for_selector(".notice:has-text('Your account has been banned.')")


def test_pages_have_titles_an_icon_a_styled_404_and_the_leaderboard_keeps_its_game(new_page, username, base_url):
    page = new_page()
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    sign_up(page, username("pat"))
    assert page.title() == "Play · Arena"
    icon = page.get_attribute("link[rel=icon]", "href")
    assert page.request.get(icon).status == 200
    assert page.request.get("/favicon.ico").ok  # followed to the same icon, for pages without the link

    # The leaderboard's game is in the URL: a reload and the back button keep the choice.
    page.goto("/leaderboard/")
    page.wait_for_selector("#board-game option[value=arena]", state="attached")
    page.select_option("#board-game", "arena")
    page.wait_for_url(re.compile(r".*/leaderboard/\?game=arena$"))
    assert page.title() == "Leaderboard: Arena · Arena"
    page.reload()
    page.wait_for_function("document.querySelector('#board-game').value === 'arena'")
    page.select_option("#board-game", "pong")
    page.wait_for_url(re.compile(r".*/leaderboard/\?game=pong$"))
    page.go_back()
    page.wait_for_url(re.compile(r".*/leaderboard/\?game=arena$"))
    page.wait_for_function("document.querySelector('#board-game').value === 'arena'")
    assert missing == []

    response = page.goto("/matches/999999/replay/nothing/")
    assert response.status == 404
    assert page.title() == "Page not found · Arena"
    assert page.locator(".topbar nav a:has-text('Lobbies')").is_visible()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 19, 32)"  # the site's CSS
    shot(page, "not-found")


def ticket_of(page) -> dict:
    """The page's remembered ticket as the server has it now."""
    remembered = page.evaluate("JSON.parse(localStorage.getItem('gs.queue'))")
    return page.evaluate(f"fetch('/api/matchmaking/tickets/{remembered['id']}/').then((r) => r.json())")


def test_queued_on_every_page_cancelled_from_the_bar_and_matched_from_any_page(new_page, username):
    ann, ben = new_page(), new_page()
    sign_up(ann, username("ann"))
    sign_up(ben, username("ben"))
    queue_for(ann, "arena")
    ann.click(".topbar nav a:has-text('Leaderboard')")
    ann.wait_for_selector("#queue-bar", state="visible")
    assert ann.locator("#queue-bar-game").inner_text() == "Arena"
    ann.wait_for_timeout(4_000)  # longer than MATCHMAKING_AWAY_SECONDS (3 here): the bar's socket holds the ticket
    assert ann.locator("#queue-bar-timer").inner_text() >= "0:04"
    assert ticket_of(ann)["status"] == "searching"
    shot(ann, "queue-bar")
    ann.click("#queue-bar-cancel")
    ann.wait_for_selector("#queue-bar", state="hidden")
    assert ann.evaluate("localStorage.getItem('gs.queue')") is None

    # Queued again, then reading the lobby list when Ben queues: Ann is taken to the match from there.
    queue_for(ann, "pong")
    ann.goto("/lobbies/")
    ann.wait_for_selector("#queue-bar", state="visible")
    queue_for(ben, "pong")
    ann.wait_for_url(MATCH_URL)
    ben.wait_for_url(MATCH_URL)
    assert ann.url == ben.url


def test_closing_the_tab_while_queued_stops_the_search_and_coming_back_says_so(new_page, username):
    ann, ben = new_page(), new_page()
    sign_up(ann, username("ann"))
    sign_up(ben, username("ben"))
    queue_for(ann, "pong")
    ticket = ticket_of(ann)
    context = ann.context
    ann.close()
    # Ben queues for the same game a moment later: he must not be matched with Ann, who is gone.
    time.sleep(4)  # MATCHMAKING_AWAY_SECONDS is 3 here
    queue_for(ben, "pong")
    ben.wait_for_timeout(2_500)  # two matchmaker steps
    assert ben.locator("#queue").is_visible() and MATCH_URL.match(ben.url) is None

    back = context.new_page()
    back.goto("/")
    back.wait_for_selector("#away", state="visible")
    assert "stopped because you left the site" in back.locator("#away-text").inner_text()
    assert back.evaluate(f"fetch('/api/matchmaking/tickets/{ticket['id']}/').then((r) => r.json())")["status"] == "cancelled"
    assert back.locator("#play").is_enabled()
    shot(back, "home-after-leaving")
    ben.click("#cancel")

