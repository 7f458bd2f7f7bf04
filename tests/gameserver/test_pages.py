"""The browser client's pages: who may see them, what they hand to their scripts, and the scripts they load."""

from __future__ import annotations

import pytest
from django.test import Client

from gameserver.errors_views import server_error

pytestmark = pytest.mark.django_db

PAGES = ["/lobbies/", "/lobbies/abcd2345/", "/matches/7/", "/leaderboard/", "/history/", "/profile/"]


@pytest.fixture
def alice_client(alice):
    client = Client()
    client.force_login(alice)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_anonymous_visitors_to_log_in(path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_with_their_script_and_the_csrf_cookie(alice_client, path):
    response = alice_client.get(path)
    assert response.status_code == 200
    assert b'<script type="module" src="/static/js/pages/' in response.content
    assert "csrftoken" in response.cookies


def test_home_offers_play_now_only_when_logged_in(alice_client):
    assert b'id="play"' in alice_client.get("/").content
    assert b'id="play"' not in Client().get("/").content


def test_every_page_hands_its_scripts_the_games_display_names(alice_client):
    import json
    import re

    from games.rules import GAMES

    for path in ("/", "/lobbies/", "/login/"):
        client = alice_client if path != "/login/" else Client()
        html = client.get(path).content.decode()
        found = re.search(r'<script id="game-names" type="application/json">(.*?)</script>', html)
        assert found, path
        names = json.loads(found.group(1))
        assert names == {slug: game.settings.name for slug, game in GAMES.items()}
        assert names["connect_four"] == "Connect Four"  # not the slug made readable ("Connect four")


def test_lobby_page_upper_cases_the_code_for_its_script(alice_client):
    assert b'data-code="ABCD2345"' in alice_client.get("/lobbies/abcd2345/").content


def test_match_page_hands_the_match_id_to_its_script(alice_client):
    assert b'data-match-id="7"' in alice_client.get("/matches/7/").content


def test_profile_of_another_user_escapes_the_name_and_shows_their_history(alice_client, make_user):
    other = make_user("<b>mallory</b>")
    response = alice_client.get(f"/users/{other.pk}/")
    assert response.status_code == 200
    assert b"&lt;b&gt;mallory&lt;/b&gt;" in response.content and b"<b>mallory</b>" not in response.content
    assert f'data-user-id="{other.pk}"'.encode() in response.content
    assert b'id="ratings"' not in response.content


def test_own_profile_shows_ratings(alice_client, alice):
    response = alice_client.get(f"/users/{alice.pk}/")
    assert b'id="ratings"' in response.content


def test_profile_of_an_unknown_user_is_404(alice_client):
    assert alice_client.get("/users/999999/").status_code == 404


def test_static_client_library_is_served(alice_client):
    response = alice_client.get("/static/js/gsclient.js")
    assert response.status_code == 200
    assert b"export class MatchClient" in b"".join(response.streaming_content)


@pytest.mark.parametrize(
    ("path", "title"),
    [("/", "Play · Arena"), ("/leaderboard/", "Leaderboard · Arena"), ("/profile/", "Your profile · Arena"),
     ("/history/", "Match history · Arena")],
)
def test_pages_are_titled_by_what_they_are(alice_client, path, title):
    assert f"<title>{title}</title>" in alice_client.get(path).content.decode()


def test_a_missing_page_is_the_sites_own_404_with_its_navigation(alice_client):
    response = alice_client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "<title>Page not found · Arena</title>" in html
    assert 'href="/lobbies/"' in html and 'href="/static/css/site.css"' in html
    assert "/no-such-page/" in html
    # The API keeps its JSON error shape.
    assert alice_client.get("/api/no-such-endpoint/").json()["error"] == "not_found"


def test_a_server_error_is_the_sites_own_500_that_needs_no_user_or_database(rf):
    response = server_error(rf.get("/matches/7/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "<title>Server error · Arena</title>" in html
    assert 'href="/lobbies/"' in html and 'href="/static/css/site.css"' in html
    assert "Log in" not in html  # it cannot know who is logged in, so it does not claim nobody is


def test_favicon_ico_points_at_the_sites_icon():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/favicon.svg"
