"""Games beyond arena and pong in the browser: Connect Four (its renderer module, loaded by slug) played to its end by
two players, and a game whose renderer does not load shown as its raw state with the socket kept open."""

from __future__ import annotations

import pytest

from tests.browser.conftest import shot
from tests.browser.test_play_in_browser import MATCH_URL, leave_match, queue_for, seat_of, sign_up, wait_running

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.multiprocess, pytest.mark.timeout(120)]


def matched(new_page, username, game: str, *, block_renderer: str | None = None):
    pages = []
    for name in ("ann", "ben"):
        page = new_page()
        if block_renderer and name == "ann":
            page.route(f"**/static/js/renderers/{block_renderer}.js", lambda route: route.abort())
        sign_up(page, username(name))
        pages.append(page)
    for page in pages:
        queue_for(page, game)
    for page in pages:
        page.wait_for_url(MATCH_URL)
        wait_running(page)
    assert pages[0].url == pages[1].url
    return pages


def state(page) -> dict:
    return page.evaluate("window.gsMatch.client.snapshot.state")


def click_column(page, col: int) -> None:
    box = page.locator("#field").bounding_box()
    page.mouse.click(box["x"] + box["width"] * (col + 0.5) / 7, box["y"] + box["height"] * 0.6)


def test_connect_four_is_played_to_its_end_by_two_players(new_page, username):
    pages = matched(new_page, username, "connect_four")
    by_seat = {seat_of(page): page for page in pages}
    assert set(by_seat) == {0, 1}
    # Whoever is on turn plays their own column: the first player stacks four in column 0 (or 1) and wins.
    first = state(pages[0])["turn"]
    column = {first: 0, 1 - first: 1}
    for move in range(7):
        turn = state(pages[0])["turn"]
        assert turn == (first if move % 2 == 0 else 1 - first)
        click_column(by_seat[turn], column[turn])
        pages[0].wait_for_function(f"() => window.gsMatch.client.snapshot.state.moves > {move}", timeout=10_000)
        if move == 2:
            shot(by_seat[turn], "match-connect-four")
    winner, loser = by_seat[first], by_seat[1 - first]
    for page, title in ((winner, "You won!"), (loser, "You lost")):
        page.wait_for_selector("#result", state="visible")
        assert page.locator("#result-title").inner_text() == title
        assert page.locator("#result-reason").inner_text() == "four_in_a_row"
    final = state(winner)
    assert final["board"][0] == [first] * 4 and final["board"][1] == [1 - first] * 3
    assert final["line"] == [[0, 0], [0, 1], [0, 2], [0, 3]]


def test_a_game_whose_renderer_does_not_load_shows_the_raw_state_and_keeps_the_socket(new_page, username):
    ann, ben = matched(new_page, username, "connect_four", block_renderer="connect_four")
    assert ann.locator("#field").get_attribute("data-view") == "generic"
    assert ben.locator("#field").get_attribute("data-view") is None
    # Snapshots keep coming to the page without a renderer, its socket stays open, and its seat stays connected.
    tick = ann.evaluate("window.gsMatch.client.snapshot.tick")
    ann.wait_for_function(f"() => window.gsMatch.client.snapshot.tick > {tick + 4}")
    assert ann.locator("#conn").inner_text() == "Connected"
    assert ben.evaluate("window.gsMatch.client.snapshot.connected") == [True, True]
    assert ann.evaluate("window.gsMatch.inputs") == 0  # no renderer, no controls: nothing is sent
    shot(ann, "match-generic-view")
    # The match is not lost: it ends as any other (here by the page's own Leave button), with a result for both.
    leave_match(ann)
    for page, title in ((ann, "You lost"), (ben, "You won!")):
        page.wait_for_selector("#result", state="visible")
        assert page.locator("#result-title").inner_text() == title
