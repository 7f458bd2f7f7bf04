"""Password change, logout and ban revoke what was issued before: tokens, sessions, tickets and live sockets."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from gameserver.accounts import services
from gameserver.closecodes import CloseCode
from tests.accounts.test_ws_auth import ORIGIN, communicator, expect_close, session_cookie, token_key
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)
NEW_PASSWORD = "another horse battery staple"


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def logged_in_browser() -> Client:
    client = Client()
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    return client


def ticket_for(client) -> str:
    response = client.post("/api/auth/ws-ticket/")
    assert response.status_code == 201, response.content
    return response.json()["ticket"]


async def open_socket(headers):
    comm = communicator(headers=[ORIGIN, *headers])
    connected, _ = await comm.connect()
    assert connected
    assert await comm.receive_from() == "alice"
    return comm


async def expect_revoked(comm, reason: str):
    assert await comm.receive_output(timeout=1) == {"type": "websocket.close", "code": CloseCode.REVOKED, "reason": reason}
    await comm.disconnect()


async def test_password_change_revokes_tokens_other_sessions_tickets_and_sockets(alice):
    key = await token_key(alice)
    other_browser = await database_sync_to_async(logged_in_browser)()
    ticket = await database_sync_to_async(ticket_for)(token_client(key))
    by_token = await open_socket([(b"authorization", f"Token {key}".encode())])
    by_session = await open_socket([(b"cookie", f"sessionid={await session_cookie(alice)}".encode())])

    response = await database_sync_to_async(token_client(key).post)(
        "/api/auth/password/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content

    await expect_revoked(by_token, "password_changed")
    await expect_revoked(by_session, "password_changed")
    await expect_close(communicator(path=f"/ws/whoami/?ticket={ticket}"), CloseCode.UNAUTHENTICATED)
    assert (await database_sync_to_async(token_client(key).get)("/api/auth/me/")).status_code == 401
    assert (await database_sync_to_async(other_browser.get)("/api/auth/me/")).status_code == 401
    # The new token works, and so do tickets issued under it.
    new_ticket = await database_sync_to_async(ticket_for)(token_client(response.json()["token"]))
    comm = communicator(path=f"/ws/whoami/?ticket={new_ticket}")
    assert (await comm.connect())[0]
    assert await comm.receive_from() == "alice"
    await comm.disconnect()


def test_password_change_in_a_browser_keeps_that_browser_logged_in(alice):
    browser, other = logged_in_browser(), logged_in_browser()
    response = browser.post("/api/auth/password/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert browser.get("/api/auth/me/").status_code == 200
    assert other.get("/api/auth/me/").status_code == 401


async def test_token_logout_refuses_the_tickets_issued_under_that_token(alice):
    key = await token_key(alice)
    ticket = await database_sync_to_async(ticket_for)(token_client(key))
    assert (await database_sync_to_async(token_client(key).post)("/api/auth/logout/")).status_code == 204
    await expect_close(communicator(path=f"/ws/whoami/?ticket={ticket}"), CloseCode.UNAUTHENTICATED)


async def test_session_logout_refuses_its_tickets_and_closes_the_sockets_opened_with_them(alice):
    browser = await database_sync_to_async(logged_in_browser)()
    live_ticket, spare_ticket = [await database_sync_to_async(ticket_for)(browser) for _ in range(2)]
    live = communicator(path=f"/ws/whoami/?ticket={live_ticket}")
    assert (await live.connect())[0]
    assert await live.receive_from() == "alice"

    assert (await database_sync_to_async(browser.post)("/logout/")).status_code == 302
    await expect_revoked(live, "logged_out")
    await expect_close(communicator(path=f"/ws/whoami/?ticket={spare_ticket}"), CloseCode.UNAUTHENTICATED)


async def test_logout_of_one_token_leaves_another_sessions_tickets_alone(alice):
    key = await token_key(alice)
    browser = await database_sync_to_async(logged_in_browser)()
    ticket = await database_sync_to_async(ticket_for)(browser)
    assert (await database_sync_to_async(token_client(key).post)("/api/auth/logout/")).status_code == 204
    comm = communicator(path=f"/ws/whoami/?ticket={ticket}")
    assert (await comm.connect())[0]
    assert await comm.receive_from() == "alice"
    await comm.disconnect()


async def test_ban_refuses_tickets_sessions_and_tokens_and_closes_sockets(alice):
    key = await token_key(alice)
    browser = await database_sync_to_async(logged_in_browser)()
    ticket = await database_sync_to_async(ticket_for)(browser)
    live = await open_socket([(b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())])

    await database_sync_to_async(services.user_ban)(user=alice, reason="test")
    await expect_revoked(live, "banned")
    await expect_close(communicator(path=f"/ws/whoami/?ticket={ticket}"), CloseCode.UNAUTHENTICATED)
    assert (await database_sync_to_async(browser.get)("/api/auth/me/")).status_code == 401
    assert not await database_sync_to_async(Token.objects.filter(key=key).exists)()
