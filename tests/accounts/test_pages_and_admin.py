"""Sign-up and log-in pages, and the admin's ban action."""

from __future__ import annotations

import pytest
from django.test import Client

from gameserver.accounts import services
from gameserver.accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_signup_page_creates_account_and_logs_in():
    client = Client()
    response = client.post("/signup/", {"username": "dave", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").context["user"].username == "dave"


def test_signup_page_shows_errors_for_a_weak_password():
    response = Client().post("/signup/", {"username": "dave", "password1": "123", "password2": "123"})
    assert response.status_code == 400
    assert b"too short" in response.content
    assert not User.objects.filter(username="dave").exists()


def test_login_page_logs_in_and_honours_a_safe_next(alice):
    client = Client()
    response = client.post("/login/?next=/api/docs/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/api/docs/"


def test_login_page_ignores_an_offsite_next(alice):
    response = Client().post("/login/?next=https://evil.example/", {"username": "alice", "password": PASSWORD})
    assert response["Location"] == "/"


def test_login_page_rejects_wrong_password_with_a_message(alice):
    response = Client().post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 401
    assert b"Wrong username or password" in response.content


def test_logout_page_needs_post_and_logs_out(alice):
    client = Client()
    client.force_login(alice)
    assert client.get("/logout/").status_code == 405
    client.post("/logout/")
    assert not client.get("/").context["user"].is_authenticated


def test_admin_ban_action_bans_and_unban_restores(admin_client, alice, api):
    response = admin_client.post(
        "/admin/accounts/user/", {"action": "ban_users", "_selected_action": [alice.pk]}, follow=True
    )
    assert b"Banned 1 user" in response.content
    alice.refresh_from_db()
    assert alice.is_banned and not alice.is_active
    assert api.post("/api/auth/login/", {"username": "alice", "password": PASSWORD}, format="json").status_code == 403
    admin_client.post("/admin/accounts/user/", {"action": "unban_users", "_selected_action": [alice.pk]})
    alice.refresh_from_db()
    assert not alice.is_banned and alice.is_active


def test_admin_user_list_searches_and_filters(admin_client, alice, bob):
    from gameserver.accounts.services import user_ban

    def listed(**query) -> set[str]:
        response = admin_client.get("/admin/accounts/user/", query)
        assert response.status_code == 200
        return {user.username for user in response.context["cl"].result_list}

    user_ban(user=bob)
    assert listed(q="ali") == {"alice"}
    assert listed(banned="yes") == {"bob"}
    assert listed(banned="no") == {"admin", "alice"}


def test_a_player_banned_while_logged_in_is_told_so_on_the_login_page(alice):
    client = Client()
    client.force_login(alice)
    services.user_ban(user=alice)
    page = client.get("/history/", follow=True)
    assert page.redirect_chain[-1][0].startswith("/login/")
    assert "Your account has been banned." in page.content.decode()
    # Someone else opening the login page in a fresh browser sees no such message.
    assert "banned" not in Client().get("/login/").content.decode()
