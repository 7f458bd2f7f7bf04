"""Lobby journeys with several players in their own browsers (issue 16): a lobby match and back to the lobby for a
rematch, a lobby link opened by a non-member, a lobby queued as a party, "Play again" without a lobby, matches
announced on any page (a lobby's start, an invitation), and chat that keeps refused lines and survives a reload."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import shot
from tests.browser.test_play_in_browser import (
    LOBBY_URL,
    MATCH_URL,
    create_lobby,
    leave_match,
    queue_for,
    sign_up,
    wait_running,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.multiprocess, pytest.mark.timeout(120)]


def join_by_link(page, code: str) -> None:
    page.goto(f"/lobbies/{code}/")
    page.wait_for_selector("#join-lobby", state="visible")
    page.click("#join-lobby")
    page.wait_for_selector("#lobby[data-member=true]", state="attached")
    page.wait_for_selector("#chat-form", state="visible")


def lobby_pair(new_page, username, game: str = "pong"):
    host, guest = new_page(), new_page()
    names = username("host"), username("gue")
    sign_up(host, names[0])
    sign_up(guest, names[1])
    code = create_lobby(host, game, 2)
    join_by_link(guest, code)
    host.wait_for_selector(f"#members li:has-text('{names[1]}')")
    return host, guest, code, names


def test_a_lobby_match_ends_back_in_the_lobby_and_the_host_starts_a_rematch(new_page, username):
    host, guest, code, (_, guest_name) = lobby_pair(new_page, username)
    guest.click("#ready")
    host.wait_for_selector("#start:enabled")
    host.click("#start")
    for page in (host, guest):
        page.wait_for_url(MATCH_URL)
        wait_running(page)
    first = host.url

    # The guest leaves mid-match (a forfeit in pong): both get the result, and Play again leads back to the lobby.
    leave_match(guest)
    for page in (host, guest):
        page.wait_for_selector("#result", state="visible")
        page.wait_for_selector(f"#play-again-hint:has-text('back to lobby {code}')")
    shot(guest, "result-lobby-play-again")
    guest.click("#play-again")
    guest.wait_for_url(f"**/lobbies/{code}/")
    guest.wait_for_selector("#lobby[data-status=open]", state="attached")
    assert guest.locator("#back-from-match").is_visible()
    assert guest.locator("#in-match").is_hidden()  # not a stale "the match is on"
    # Play again readied the guest up for the rematch.
    guest.wait_for_selector(f"#members li:has-text('{guest_name}') .tag.ready")
    assert guest.locator("#ready").inner_text() == "Not ready"

    host.click("#play-again")
    host.wait_for_url(f"**/lobbies/{code}/")
    host.wait_for_selector("#back-text:has-text('Start the rematch')")
    host.wait_for_selector("#start:enabled")
    assert host.locator("#queue-party").is_hidden()  # two players fill pong: no opponents to find
    shot(host, "lobby-back-from-match")
    host.click("#start")
    for page in (host, guest):
        page.wait_for_url(MATCH_URL)
    assert host.url == guest.url != first


def test_a_lobby_link_shows_the_lobby_to_a_non_member_who_can_join_and_leave_at_any_time(new_page, username):
    host, guest = new_page(), new_page()
    host_name, guest_name = username("host"), username("gue")
    sign_up(host, host_name)
    sign_up(guest, guest_name)
    code = create_lobby(host, "connect_four")

    guest.goto(f"/lobbies/{code}/")
    guest.wait_for_selector("#guest", state="visible")
    assert guest.locator("#lobby-game").inner_text() == "Connect Four"
    assert guest.locator("#members li").all_inner_texts() == [f"{host_name}\nhost"]
    assert guest.locator("#leave-lobby").is_hidden() and guest.locator("#chat-form").is_hidden()
    shot(guest, "lobby-link-not-a-member")
    guest.click("#join-lobby")
    guest.wait_for_selector("#leave-lobby", state="visible")
    host.wait_for_selector(f"#members li:has-text('{guest_name}')")

    # Kicked: the page says so and offers to join again, instead of a dead room.
    host.click(f"#members li:has-text('{guest_name}') button:has-text('kick')")
    guest.wait_for_selector("#guest-text:has-text('no longer in this lobby')")
    assert guest.locator("#join-lobby").is_enabled() and guest.locator("#leave-lobby").is_hidden()
    guest.click("#join-lobby")
    guest.wait_for_selector("#leave-lobby", state="visible")

    # Home leads a member back to their lobby (Play now alone would be refused).
    guest.goto("/")
    guest.wait_for_selector("#my-lobby", state="visible")
    assert guest.get_attribute("#my-lobby-link", "href") == f"/lobbies/{code}/"

    # Leaving while offline keeps the player in the lobby and says so; once online, leaving works.
    guest.goto(f"/lobbies/{code}/")
    guest.wait_for_selector("#lobby[data-member=true]", state="attached")
    guest.context.set_offline(True)
    guest.click("#leave-lobby")
    guest.wait_for_selector("#lobby-error:has-text('still in the lobby')", state="visible")
    assert LOBBY_URL.match(guest.url)
    guest.context.set_offline(False)
    guest.click("#leave-lobby")
    guest.wait_for_url("**/lobbies/")
    host.wait_for_function(f"!document.querySelector('#members').textContent.includes('{guest_name}')")


def test_a_lobby_queues_as_a_party_and_every_member_goes_to_the_match(new_page, username):
    host, guest, code, _ = lobby_pair(new_page, username, game="arena")
    solo = new_page()
    sign_up(solo, username("solo"))
    assert host.locator("#queue-party").is_disabled()  # the guest is not ready yet
    guest.click("#ready")
    host.wait_for_selector("#queue-party:enabled")
    host.click("#queue-party")
    # Every member sees the party's search: on the lobby page, and in the bar of any page.
    host.wait_for_selector("#party-search", state="visible")
    guest.wait_for_selector("#party-search", state="visible")
    assert host.locator("#start").is_disabled()
    guest.goto("/leaderboard/")
    guest.wait_for_selector("#queue-bar", state="visible")
    assert guest.locator("#queue-bar-game").inner_text() == "Arena"
    shot(host, "lobby-party-search")
    queue_for(solo, "arena")
    # Arena starts short-handed (3 of 8) once the oldest ticket has waited 20 s.
    for page in (host, guest, solo):
        page.wait_for_url(MATCH_URL, timeout=45_000)
    assert host.url == guest.url == solo.url


def test_play_again_without_a_lobby_queues_for_the_same_game(new_page, username):
    ann, ben = new_page(), new_page()
    sign_up(ann, username("ann"))
    sign_up(ben, username("ben"))
    queue_for(ann, "pong")
    queue_for(ben, "pong")
    for page in (ann, ben):
        page.wait_for_url(MATCH_URL)
        wait_running(page)
    first = ann.url
    leave_match(ben)
    for page in (ann, ben):
        page.wait_for_selector("#result", state="visible")
        page.wait_for_function("document.querySelector('#play-again-hint') !== null")
    ann.click("#play-again")
    ann.wait_for_selector("#queue-bar", state="visible")  # searching, from the result screen
    assert ann.locator("#play-again-hint").inner_text() == "Searching for a Pong match…"
    shot(ann, "result-play-again-searching")
    # Cancelled from the result screen (or the bar): Play again is on offer again.
    ann.click("#play-again:has-text('Cancel search')")
    ann.wait_for_selector("#queue-bar", state="hidden")
    ann.wait_for_selector("#play-again:has-text('Play again')")
    ann.click("#play-again")
    ann.wait_for_selector("#queue-bar", state="visible")
    ann.click("#queue-bar-cancel")
    ann.wait_for_selector("#play-again:has-text('Play again')")
    ann.click("#play-again")
    ann.wait_for_selector("#queue-bar", state="visible")
    ben.click("#play-again")
    for page in (ann, ben):
        page.wait_for_url(lambda url: MATCH_URL.match(url) and url != first)
    assert ann.url == ben.url


def test_a_lobby_start_and_an_invitation_are_announced_on_any_page(new_page, username):
    host, guest, code, (host_name, guest_name) = lobby_pair(new_page, username)
    guest.click("#ready")
    host.wait_for_selector("#start:enabled")
    guest.goto("/leaderboard/")  # readied up, then went reading elsewhere
    guest.wait_for_load_state("networkidle")
    host.click("#start")
    host.wait_for_url(MATCH_URL)
    guest.wait_for_url(MATCH_URL)
    assert guest.url == host.url

    # An invitation (POST /api/matches/) reaches the invited player on whatever page they are on.
    friend = new_page()
    friend_name = username("fri")
    sign_up(friend, friend_name)
    friend.goto("/history/")
    friend.wait_for_load_state("networkidle")
    created = host.evaluate(
        """async (names) => {
            const csrf = document.cookie.split('; ').find((c) => c.startsWith('csrftoken=')).split('=')[1];
            const r = await fetch('/api/matches/', {method: 'POST', headers: {'Content-Type': 'application/json',
                'X-CSRFToken': csrf}, body: JSON.stringify({game: 'connect_four', players: names})});
            return [r.status, await r.json()];
        }""",
        [host_name, friend_name],
    )
    assert created[0] == 201, created
    friend.wait_for_selector("#match-call", state="visible")
    assert friend.locator("#match-call-text").inner_text() == f"{host_name} invites you to a Connect Four match."
    shot(friend, "invitation-announced")
    friend.click("#match-call-accept")
    # Either the match page or the error the box shows (a refused accept), so that a failure says which.
    match_path = f"/matches/{created[1]['id']}/"
    friend.wait_for_function(
        "(path) => location.pathname === path || !document.querySelector('#match-call-error').hidden", arg=match_path
    )
    if friend.url.endswith(match_path):
        friend.wait_for_load_state()
    else:
        pytest.fail(f"the accept was refused: {friend.locator('#match-call-error').inner_text()!r}")


def test_chat_keeps_a_refused_line_in_the_box_and_its_history_survives_a_reload(new_page, username, proxy):
    host, guest, code, (host_name, _) = lobby_pair(new_page, username)
    for n in range(5):
        host.fill("#chat-text", f"line {n}")
        host.press("#chat-text", "Enter")
        host.wait_for_selector(f"#chat-log li:has-text('line {n}')")
        assert host.input_value("#chat-text") == ""
    host.fill("#chat-text", "one too many")
    host.press("#chat-text", "Enter")
    host.wait_for_selector("#lobby-error:has-text('At most 5 messages')", state="visible")
    assert host.input_value("#chat-text") == "one too many"  # refused, not lost
    assert host.locator("#chat-log li:has-text('one too many')").count() == 0

    guest.reload()
    guest.wait_for_selector("#chat-log li:has-text('line 4')")
    assert [t.split(" ", 1)[1] for t in guest.locator("#chat-log li").all_inner_texts()] == [f"line {n}" for n in range(5)]
    shot(guest, "lobby-chat-history")

    # The room's socket drops (Chromium's offline mode leaves open sockets alone, so the proxy cuts it): the line
    # stays in the box; once the room reconnects, it goes out.
    session = next(c["value"] for c in guest.context.cookies() if c["name"] == "sessionid")
    needles = (f"GET /ws/lobbies/{code}/".encode(), session.encode())
    proxy.refuse(*needles)
    try:
        assert proxy.cut(*needles) >= 1  # the socket of the page before the reload is on the proxy's list too
        guest.wait_for_selector("#lobby-conn:has-text('Reconnecting')")
        guest.fill("#chat-text", "sent later")
        guest.press("#chat-text", "Enter")
        guest.wait_for_selector("#lobby-error:has-text('Not connected')", state="visible")
        assert guest.input_value("#chat-text") == "sent later"
    finally:
        proxy.refuse()
    guest.wait_for_function("document.querySelector('#lobby-conn').textContent === ''", timeout=20_000)
    guest.press("#chat-text", "Enter")
    host.wait_for_selector("#chat-log li:has-text('sent later')")
    guest.wait_for_function("document.querySelector('#chat-text').value === ''")
    assert re.fullmatch(r"[A-Z0-9]{8}", code)
