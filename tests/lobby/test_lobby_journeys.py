"""Lobby journeys (issue 16) below the browser: a lobby reopens when its match ends, leaving stops the party's search,
the lobby you are in is one request away, chat history is kept and bounded, and new matches are announced to their
players on their own socket."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from games.models import Match
from games.rules.base import MatchResult
from games.services import match_cancel, match_create, match_finish
from lobby import matchmaker, services
from lobby.models import ChatLine, Lobby, LobbyMember, Ticket
from tests.lobby.conftest import assert_error
from tests.lobby.test_consumers import connect, expect_close, receive

call = database_sync_to_async


def finish(match: Match) -> bool:
    result = MatchResult(placings=[1, 2], scores=[3, 0], winner_seats=[0], reason="score_limit")
    return match_finish(
        match_id=match.pk, result=result, ticks=1, duration_seconds=1.0, abandoned_seats=[], connected_seats=[0, 1],
        input_log=[],
    )


def started_lobby(alice, bob, game: str = "pong") -> Lobby:
    lobby = services.lobby_create(user=alice, game=game)
    services.lobby_join(user=bob, code=lobby.code)
    services.lobby_set_ready(user=bob, code=lobby.code, ready=True)
    return services.lobby_start(user=alice, code=lobby.code)


# --- after the match -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("end", ["finish", "cancel"])
def test_a_lobby_opens_again_when_its_match_ends_and_the_host_starts_the_next_one(alice, bob, end):
    lobby = started_lobby(alice, bob)
    first = lobby.match
    if end == "finish":
        assert finish(first)
    else:
        assert match_cancel(match_id=first.pk, reason="no_show")
    lobby.refresh_from_db()
    assert lobby.status == Lobby.Status.OPEN and lobby.match_id == first.pk  # the last match stays, for its result
    assert not LobbyMember.objects.filter(lobby=lobby, ready=True).exists()
    with pytest.raises(services.LobbyError, match="ready"):
        services.lobby_start(user=alice, code=lobby.code)
    services.lobby_set_ready(user=bob, code=lobby.code, ready=True)
    second = services.lobby_start(user=alice, code=lobby.code).match
    assert second.pk != first.pk and second.status == Match.Status.WAITING


@pytest.mark.django_db
def test_an_ending_match_leaves_other_lobbies_alone(alice, bob, carol, make_user):
    playing = started_lobby(alice, bob)
    dave = make_user("dave")
    other = started_lobby(carol, dave)
    assert finish(playing.match)
    other.refresh_from_db()
    assert other.status == Lobby.Status.IN_MATCH
    # A match that was never a lobby's changes no lobby.
    assert services.lobby_match_over(match_id=match_create(game="pong", users=[alice, carol]).pk, match_status="finished") is None


@pytest.mark.django_db
def test_rematch_answers_the_reopened_lobby_and_refuses_while_the_match_is_on(api_as, alice, bob):
    lobby = started_lobby(alice, bob)
    assert_error(api_as(alice).post(f"/api/lobbies/{lobby.code}/rematch/"), 409, "match_in_progress")
    finish(lobby.match)
    response = api_as(alice).post(f"/api/lobbies/{lobby.code}/rematch/")
    assert response.status_code == 200 and response.json()["status"] == "open"


@pytest.mark.django_db
def test_a_member_can_leave_during_the_match_and_the_last_one_out_closes_it(alice, bob):
    lobby = started_lobby(alice, bob)
    services.lobby_leave(user=bob, code=lobby.code)
    services.lobby_leave(user=alice, code=lobby.code)
    lobby.refresh_from_db()
    assert lobby.status == Lobby.Status.CLOSED
    finish(lobby.match)  # the match ends after everyone left: the closed lobby stays closed
    lobby.refresh_from_db()
    assert lobby.status == Lobby.Status.CLOSED


# --- the lobby you are in ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_my_lobby_is_null_or_the_lobby_and_queueing_alone_names_it(api_as, alice, bob):
    assert api_as(alice).get("/api/lobbies/mine/").json() == {"lobby": None}
    lobby = services.lobby_create(user=alice, game="pong")
    mine = api_as(alice).get("/api/lobbies/mine/").json()["lobby"]
    assert mine["code"] == lobby.code and mine["members"][0]["username"] == "alice"
    assert api_as(bob).get("/api/lobbies/mine/").json() == {"lobby": None}
    body = assert_error(api_as(alice).post("/api/matchmaking/tickets/", {"game": "pong"}, format="json"), 409, "in_lobby")
    assert lobby.code in body["message"]


# --- queueing as a party -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["leave", "kick"])
def test_a_member_who_goes_stops_the_partys_search(alice, bob, carol, how):
    lobby = services.lobby_create(user=alice, game="arena")
    for user in (bob, carol):
        services.lobby_join(user=user, code=lobby.code)
        services.lobby_set_ready(user=user, code=lobby.code, ready=True)
    ticket = services.ticket_create(user=alice, game="arena", lobby_code=lobby.code)
    if how == "leave":
        services.lobby_leave(user=carol, code=lobby.code)
    else:
        services.lobby_kick(user=alice, code=lobby.code, user_id=carol.pk)
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CANCELLED
    # The rest of the party queues again, without Carol.
    services.lobby_set_ready(user=bob, code=lobby.code, ready=True)
    again = services.ticket_create(user=alice, game="arena", lobby_code=lobby.code)
    assert again.size == 2


@pytest.mark.django_db(transaction=True)
async def test_every_party_member_hears_of_the_partys_ticket_and_of_its_cancel(alice, bob):
    lobby = await call(services.lobby_create)(user=alice, game="pong")
    await call(services.lobby_join)(user=bob, code=lobby.code)
    await call(services.lobby_set_ready)(user=bob, code=lobby.code, ready=True)
    bob_ws = await connect("/ws/matchmaking/", bob)
    try:
        assert (await receive(bob_ws))["ticket"] is None
        await call(services.ticket_create)(user=alice, game="pong", lobby_code=lobby.code)
        queued = await receive(bob_ws)
        assert queued["type"] == "ticket.update" and queued["ticket"]["status"] == "searching"
        assert [m["username"] for m in queued["ticket"]["party"]] == ["alice", "bob"]
        await call(services.lobby_leave)(user=bob, code=lobby.code)
        assert (await receive(bob_ws))["ticket"]["status"] == "cancelled"
    finally:
        await bob_ws.disconnect()


# --- chat history ------------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_chat_history_is_sent_on_connect_and_refused_lines_are_not_kept(alice, bob):
    lobby = await call(services.lobby_create)(user=alice, game="pong")
    await call(services.lobby_join)(user=bob, code=lobby.code)
    alice_ws = await connect(f"/ws/lobbies/{lobby.code}/", alice)
    try:
        assert (await receive(alice_ws))["chat"] == []
        for text in ("one", "two", "three", "four", "five", "six"):
            await alice_ws.send_to(text_data=json.dumps({"type": "chat", "text": text}))
        answers = [await receive(alice_ws) for _ in range(6)]
        assert sorted(m.get("text", m.get("error")) for m in answers) == sorted(
            ["chat_rate_limited", "one", "two", "three", "four", "five"]
        )
    finally:
        await alice_ws.disconnect()
    bob_ws = await connect(f"/ws/lobbies/{lobby.code}/", bob)
    try:
        state = await receive(bob_ws)
        assert [line["text"] for line in state["chat"]] == ["one", "two", "three", "four", "five"]
        assert state["chat"][0]["user"] == {"id": alice.pk, "username": "alice"} and state["chat"][0]["at"]
    finally:
        await bob_ws.disconnect()


@pytest.mark.django_db
def test_chat_history_keeps_the_last_lines_of_each_lobby(alice, bob, carol, settings, monkeypatch):
    monkeypatch.setattr(services, "CHAT_BURST", 10_000)
    first = services.lobby_create(user=alice, game="pong")
    other = services.lobby_create(user=carol, game="pong")
    services.lobby_chat(user=carol, code=other.code, text="elsewhere")
    for n in range(services.CHAT_HISTORY_LINES + 7):
        services.lobby_chat(user=alice, code=first.code, text=f"line {n}")
    kept = list(ChatLine.objects.filter(lobby=first).values_list("text", flat=True))
    assert len(kept) == services.CHAT_HISTORY_LINES
    assert kept[0] == "line 7" and kept[-1] == f"line {services.CHAT_HISTORY_LINES + 6}"
    assert list(ChatLine.objects.filter(lobby=other).values_list("text", flat=True)) == ["elsewhere"]


# --- announcements -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_lobby_start_is_announced_on_each_members_own_socket(alice, bob):
    lobby = await call(services.lobby_create)(user=alice, game="pong")
    await call(services.lobby_join)(user=bob, code=lobby.code)
    await call(services.lobby_set_ready)(user=bob, code=lobby.code, ready=True)
    sockets = {user.username: await connect("/ws/matchmaking/", user) for user in (alice, bob)}
    try:
        for ws in sockets.values():
            await receive(ws)  # matchmaking.state
        lobby = await call(services.lobby_start)(user=alice, code=lobby.code)
        for ws in sockets.values():
            announced = await receive(ws)
            assert announced == {
                "type": "match.created",
                "match": {"id": lobby.match_id, "ws": f"/ws/matches/{lobby.match_id}/", "api": f"/api/matches/{lobby.match_id}/"},
                "game": "pong",
                "source": "lobby",
                "players": [{"id": alice.pk, "username": "alice"}, {"id": bob.pk, "username": "bob"}],
                "invited": False,
                "invited_by": None,
            }
    finally:
        for ws in sockets.values():
            await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_invitation_is_announced_as_one_to_answer(alice, bob):
    bob_ws = await connect("/ws/matchmaking/", bob)
    alice_ws = await connect("/ws/matchmaking/", alice)
    try:
        await receive(bob_ws)
        await receive(alice_ws)
        match = await call(match_create)(game="pong", users=[alice, bob], source="api", invited_by=alice)
        invitation = await receive(bob_ws)
        assert invitation["match"]["id"] == match.pk
        assert (invitation["invited"], invitation["invited_by"]) == (True, {"id": alice.pk, "username": "alice"})
        assert await alice_ws.receive_nothing(timeout=0.3)  # the inviter has the match in the API's answer
    finally:
        await bob_ws.disconnect()
        await alice_ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_matchmaking_match_is_announced_by_its_tickets_only(alice, bob):
    alice_ws = await connect("/ws/matchmaking/", alice)
    try:
        await receive(alice_ws)
        for user in (alice, bob):
            await call(services.ticket_create)(user=user, game="pong")
        assert (await receive(alice_ws))["ticket"]["status"] == "searching"
        await call(matchmaker.run_one_step)()
        matched = await receive(alice_ws)
        assert matched["type"] == "ticket.update" and matched["ticket"]["status"] == "matched"
        assert await alice_ws.receive_nothing(timeout=0.3)
    finally:
        await alice_ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_non_member_socket_is_refused_and_the_lobby_stays_readable(alice, bob, api_as):
    lobby = await call(services.lobby_create)(user=alice, game="pong")
    comm = await connect(f"/ws/lobbies/{lobby.code}/", bob)
    try:
        await expect_close(comm, 4003)
    finally:
        await comm.disconnect()
    body = (await call(lambda: api_as(bob).get(f"/api/lobbies/{lobby.code}/").json())())
    assert body["game"] == "pong" and [m["username"] for m in body["members"]] == ["alice"]


@pytest.mark.django_db(transaction=True)
async def test_members_hear_match_over_with_the_lobby_open_again(alice, bob):
    lobby = await call(started_lobby)(alice, bob)
    comm = await connect(f"/ws/lobbies/{lobby.code}/", bob)
    try:
        assert (await receive(comm))["lobby"]["status"] == "in_match"
        await call(match_cancel)(match_id=lobby.match_id, reason="no_show")
        over = await receive(comm)
        assert (over["event"], over["match_status"], over["match"]["id"]) == ("match_over", "cancelled", lobby.match_id)
        assert over["lobby"]["status"] == "open"
        assert [m["ready"] for m in over["lobby"]["members"]] == [False, False]
    finally:
        await comm.disconnect()
