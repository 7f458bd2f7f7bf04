"""Accounts API: registration, logins, logout, password change, bans and error bodies."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from gameserver.accounts import services
from gameserver.throttle import Rate
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


# --- register ---------------------------------------------------------------------------------------------------


def test_register_returns_token_that_authenticates(api):
    response = api.post("/api/auth/register/", {"username": "dave", "password": PASSWORD}, format="json")
    assert response.status_code == 201
    token = response.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/auth/me/").json()["username"] == "dave"


def test_register_duplicate_username_is_rejected_case_insensitively(api, alice):
    response = api.post("/api/auth/register/", {"username": "ALICE", "password": PASSWORD}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert "username" in body["fields"]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "username"),
        ({"username": "dave"}, "password"),
        ({"username": "dave", "password": "123"}, "password"),
        ({"username": "dave", "password": "password"}, "password"),
        ({"username": "davidson", "password": "davidson1"}, "password"),
        ({"username": 12, "password": ["x"]}, "password"),
        ({"username": "no spaces!", "password": PASSWORD}, "username"),
        ({"username": "x" * 151, "password": PASSWORD}, "username"),
        ({"username": "dave", "password": PASSWORD, "email": "not-an-email"}, "email"),
    ],
)
def test_register_bad_fields_get_field_errors(api, payload, field):
    body = assert_error(api.post("/api/auth/register/", payload, format="json"), 400, "validation_error")
    assert field in body["fields"]


def test_register_malformed_json_is_a_clear_400(api):
    response = api.generic("POST", "/api/auth/register/", "{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_register_non_object_json_is_a_clear_400(api):
    response = api.generic("POST", "/api/auth/register/", "[1, 2]", content_type="application/json")
    assert_error(response, 400, "validation_error")


def test_register_form_encoding_is_unsupported_media_type(api):
    response = api.post("/api/auth/register/", {"username": "dave", "password": PASSWORD})
    assert_error(response, 415, "unsupported_media_type")


def test_oversized_body_is_refused_with_413(api):
    big = '{"username": "dave", "password": "' + "x" * 70_000 + '"}'
    response = api.generic("POST", "/api/auth/register/", big, content_type="application/json")
    assert_error(response, 413, "request_too_large")


def test_register_is_rate_limited_per_address(api, settings):
    settings.SIGNUP_RATE = Rate(limit=2, window_seconds=3600)
    for i in range(2):
        assert api.post("/api/auth/register/", {"username": f"user{i}", "password": PASSWORD}, format="json").status_code == 201
    response = api.post("/api/auth/register/", {"username": "user9", "password": PASSWORD}, format="json")
    body = assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert body["retry_after"] > 0


# --- login ------------------------------------------------------------------------------------------------------


def test_token_login_returns_the_users_token(api, alice):
    response = api.post("/api/auth/login/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=alice).key


def test_wrong_password_is_401_invalid_credentials(api, alice):
    response = api.post("/api/auth/login/", {"username": "alice", "password": "nope"}, format="json")
    assert_error(response, 401, "invalid_credentials")


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(api):
    response = api.post("/api/auth/login/", {"username": "nobody", "password": "nope"}, format="json")
    assert_error(response, 401, "invalid_credentials")


def test_login_missing_fields_is_validation_error(api):
    body = assert_error(api.post("/api/auth/login/", {"username": "alice"}, format="json"), 400, "validation_error")
    assert "password" in body["fields"]


def test_repeated_failed_logins_are_throttled_with_retry_after(api, alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        api.post("/api/auth/login/", {"username": "alice", "password": "wrong"}, format="json")
    response = api.post("/api/auth/login/", {"username": "alice", "password": PASSWORD}, format="json")
    body = assert_error(response, 429, "login_throttled")
    assert 0 < int(response["Retry-After"]) <= settings.LOGIN_FAILURE_WINDOW_SECONDS
    assert body["retry_after"] == int(response["Retry-After"])


def test_failed_logins_from_one_address_throttle_other_usernames_too(api, alice, bob, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for name in ["x1", "x2", "x3"]:
        api.post("/api/auth/login/", {"username": name, "password": "wrong"}, format="json")
    response = api.post("/api/auth/login/", {"username": "bob", "password": PASSWORD}, format="json")
    assert_error(response, 429, "login_throttled")


def test_session_login_sets_a_cookie_that_authenticates(api, alice):
    response = api.post("/api/auth/session/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert "sessionid" in response.cookies
    assert api.get("/api/auth/me/").json()["username"] == "alice"


def test_me_without_credentials_is_401(api):
    assert_error(api.get("/api/auth/me/"), 401, "not_authenticated")


def test_bad_token_is_401_invalid_token(api):
    api.credentials(HTTP_AUTHORIZATION="Token deadbeef")
    assert_error(api.get("/api/auth/me/"), 401, "invalid_token")


# --- logout and password --------------------------------------------------------------------------------------------


def test_logout_revokes_the_token(api_as, alice):
    client = api_as(alice)
    assert client.post("/api/auth/logout/").status_code == 204
    assert_error(client.get("/api/auth/me/"), 401, "invalid_token")
    assert not Token.objects.filter(user=alice).exists()


def test_session_logout_ends_the_session(api, alice):
    api.post("/api/auth/session/", {"username": "alice", "password": PASSWORD}, format="json")
    assert api.post("/api/auth/logout/").status_code == 204
    assert_error(api.get("/api/auth/me/"), 401, "not_authenticated")


def test_password_change_replaces_token_and_password(api_as, api, alice):
    client = api_as(alice)
    old_token = client.token
    new_password = "a whole new secret 42"
    response = client.post("/api/auth/password/", {"old_password": PASSWORD, "new_password": new_password}, format="json")
    assert response.status_code == 200
    assert response.json()["token"] != old_token
    assert_error(client.get("/api/auth/me/"), 401, "invalid_token")
    assert api.post("/api/auth/login/", {"username": "alice", "password": new_password}, format="json").status_code == 200


def test_password_change_with_wrong_old_password_is_rejected(api_as, alice):
    response = api_as(alice).post("/api/auth/password/", {"old_password": "x", "new_password": "fine new password 9"}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert "old_password" in body["fields"]


def test_password_change_to_a_weak_password_is_rejected(api_as, alice):
    response = api_as(alice).post("/api/auth/password/", {"old_password": PASSWORD, "new_password": "alice"}, format="json")
    assert "new_password" in assert_error(response, 400, "validation_error")["fields"]


# --- bans ---------------------------------------------------------------------------------------------------------


def test_banned_user_cannot_log_in_and_their_token_stops_working(api_as, api, alice):
    client = api_as(alice)
    services.user_ban(user=alice, reason="cheating")
    assert_error(client.get("/api/auth/me/"), 401, "invalid_token")
    response = api.post("/api/auth/login/", {"username": "alice", "password": PASSWORD}, format="json")
    assert_error(response, 403, "account_banned")


def test_unbanned_user_can_log_in_again(api, alice):
    services.user_ban(user=alice)
    services.user_unban(user=alice)
    assert api.post("/api/auth/login/", {"username": "alice", "password": PASSWORD}, format="json").status_code == 200


# --- tickets, schema, unknown endpoints ---------------------------------------------------------------------------


def test_ws_ticket_is_single_use(api_as, alice):
    ticket = api_as(alice).post("/api/auth/ws-ticket/").json()["ticket"]
    assert services.ws_ticket_redeem(ticket=ticket)[0] == alice
    assert services.ws_ticket_redeem(ticket=ticket) is None


def test_ws_ticket_needs_authentication(api):
    assert_error(api.post("/api/auth/ws-ticket/"), 401, "not_authenticated")


def test_unknown_api_path_is_json_404(api):
    assert_error(api.get("/api/nothing-here/"), 404, "not_found")


def test_wrong_method_is_405_json(api_as, alice):
    assert_error(api_as(alice).delete("/api/auth/me/"), 405, "method_not_allowed")


def test_openapi_schema_documents_every_accounts_endpoint(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ["register", "login", "session", "logout", "me", "password", "ws-ticket"]:
        assert f"/api/auth/{path}/" in paths
    login = paths["/api/auth/login/"]["post"]["responses"]
    assert {"200", "400", "401", "403", "429"} <= set(login)


def test_docs_page_renders(api):
    response = api.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
