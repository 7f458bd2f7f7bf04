"""WebSocket authentication: origin check, session cookie, single-use ticket, token header, revoke on ban/logout."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.urls import path
from rest_framework.authtoken.models import Token

from gameserver.accounts import services
from gameserver.closecodes import CloseCode
from gameserver.ws import BaseConsumer, WebSocketAuthStack

pytestmark = pytest.mark.django_db(transaction=True)


class WhoAmIConsumer(BaseConsumer):
    async def connect(self):
        await self.accept()
        await self.send(text_data=self.user.username)


application = AllowedHostsOriginValidator(WebSocketAuthStack(URLRouter([path("ws/whoami/", WhoAmIConsumer.as_asgi())])))
ORIGIN = (b"origin", b"http://localhost:8000")


def communicator(path="/ws/whoami/", headers=(ORIGIN,)):
    return WebsocketCommunicator(application, path, headers=list(headers))


@database_sync_to_async
def token_key(user):
    return Token.objects.get_or_create(user=user)[0].key


@database_sync_to_async
def session_cookie(user):
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.create()
    return store.session_key


async def expect_close(comm, code):
    connected, _ = await comm.connect()
    assert connected
    message = await comm.receive_output(timeout=3)
    assert message == {"type": "websocket.close", "code": code}, message
    await comm.wait()


async def test_anonymous_socket_is_closed_with_4001():
    await expect_close(communicator(), CloseCode.UNAUTHENTICATED)


async def test_missing_origin_is_refused_at_handshake():
    comm = communicator(headers=())
    connected, _ = await comm.connect()
    assert not connected


async def test_foreign_origin_is_refused_at_handshake(alice):
    key = await token_key(alice)
    comm = communicator(headers=[(b"origin", b"https://evil.example"), (b"authorization", f"Token {key}".encode())])
    connected, _ = await comm.connect()
    assert not connected


async def test_token_header_authenticates(alice):
    key = await token_key(alice)
    comm = communicator(headers=[ORIGIN, (b"authorization", f"Token {key}".encode())])
    assert (await comm.connect())[0]
    assert await comm.receive_from() == "alice"
    await comm.disconnect()


async def test_bad_token_header_is_closed_with_4001(alice):
    await expect_close(communicator(headers=[ORIGIN, (b"authorization", b"Token nope")]), CloseCode.UNAUTHENTICATED)


async def test_session_cookie_authenticates(alice):
    key = await session_cookie(alice)
    comm = communicator(headers=[ORIGIN, (b"cookie", f"sessionid={key}".encode())])
    assert (await comm.connect())[0]
    assert await comm.receive_from() == "alice"
    await comm.disconnect()


async def test_ticket_authenticates_once(alice):
    key = await token_key(alice)
    ticket = (await database_sync_to_async(services.ws_ticket_issue)(user=alice, credential=key)).ticket
    comm = communicator(path=f"/ws/whoami/?ticket={ticket}")
    assert (await comm.connect())[0]
    assert await comm.receive_from() == "alice"
    await comm.disconnect()
    await expect_close(communicator(path=f"/ws/whoami/?ticket={ticket}"), CloseCode.UNAUTHENTICATED)


async def test_ban_closes_live_sockets_with_4012(alice):
    key = await token_key(alice)
    comm = communicator(headers=[ORIGIN, (b"authorization", f"Token {key}".encode())])
    await comm.connect()
    await comm.receive_from()
    await database_sync_to_async(services.user_ban)(user=alice, reason="test")
    assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": CloseCode.REVOKED, "reason": "banned"}
    await comm.disconnect()


async def test_logout_closes_only_the_sockets_of_that_token(alice):
    key = await token_key(alice)
    by_token = communicator(headers=[ORIGIN, (b"authorization", f"Token {key}".encode())])
    by_session = communicator(headers=[ORIGIN, (b"cookie", f"sessionid={await session_cookie(alice)}".encode())])
    for comm in (by_token, by_session):
        await comm.connect()
        await comm.receive_from()
    token = await database_sync_to_async(Token.objects.get)(key=key)
    await database_sync_to_async(services.token_revoke)(token=token)
    assert (await by_token.receive_output(timeout=3))["code"] == CloseCode.REVOKED
    assert await by_session.receive_nothing(timeout=0.3)
    await by_token.disconnect()
    await by_session.disconnect()


# --- open sockets per user and per address ---------------------------------------------------------------------


async def open_as(key, client=("203.0.113.7", 50000)):
    comm = WebsocketCommunicator(application, "/ws/whoami/", headers=[ORIGIN, (b"authorization", f"Token {key}".encode())])
    comm.scope["client"] = list(client)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def test_a_user_over_the_connection_limit_is_closed_with_4029_and_a_closed_socket_frees_a_place(alice, settings):
    settings.WS_MAX_CONNECTIONS_PER_USER = 3
    key = await token_key(alice)
    open_ones = [await open_as(key) for _ in range(3)]
    for comm in open_ones:
        assert await comm.receive_from() == "alice"
    extra = await open_as(key)
    assert await extra.receive_output(timeout=3) == {"type": "websocket.close", "code": CloseCode.TOO_MANY_CONNECTIONS, "reason": "too many connections"}
    await open_ones[0].disconnect()
    again = await open_as(key)
    assert await again.receive_from() == "alice"
    for comm in [*open_ones[1:], again]:
        await comm.disconnect()


async def test_an_address_over_the_connection_limit_is_closed_with_4029_whoever_connects(make_user, settings):
    settings.WS_MAX_CONNECTIONS_PER_ADDRESS = 2
    keys = [await token_key(await database_sync_to_async(make_user)(f"user{n}")) for n in range(3)]
    first, second = await open_as(keys[0]), await open_as(keys[1])
    third = await open_as(keys[2])
    assert (await third.receive_output(timeout=3))["code"] == CloseCode.TOO_MANY_CONNECTIONS
    elsewhere = await open_as(keys[2], client=("198.51.100.9", 50000))  # another address is not affected
    assert await elsewhere.receive_from() == "user2"
    for comm in (first, second, elsewhere):
        await comm.disconnect()
