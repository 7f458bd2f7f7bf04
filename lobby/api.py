"""REST API of lobbies, matchmaking tickets, leaderboards and match history. Thin: validate, call, shape."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from games.rules import GAMES
from gameserver.accounts.models import User
from gameserver.api_errors import INVALID_PAGINATION, ApiError, documented_error
from gameserver.pagination import PAGINATION_PARAMETERS, LimitOffsetPagination
from lobby import matchmaker, selectors, serializers, services
from lobby.groups import match_pointer
from lobby.models import Lobby, Rating, RatingChange
from lobby.ratings import display_rating

_STATUS = {"not_found": 404, "forbidden": 403, "conflict": 409, "invalid": 400}




UNAUTHENTICATED = documented_error("not_authenticated")
CODE = OpenApiParameter("code", str, OpenApiParameter.PATH, description="The lobby's 8-character code.")


def _call(action, **kwargs) -> Any:
    try:
        return action(**kwargs)
    except services.LobbyError as exc:
        raise ApiError(exc.code, str(exc), status_code=_STATUS[exc.kind]) from None


def _valid(serializer_class, data) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _lobby_response(lobby: Lobby, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(selectors.lobby_snapshot(lobby=lobby), status=status_code)


# --- lobbies ---------------------------------------------------------------------------------------------------------


class LobbyListCreateView(APIView):
    @extend_schema(
        parameters=[serializers.LobbyListQuerySerializer, *PAGINATION_PARAMETERS],
        responses={
            200: serializers.LobbyListItemSerializer(many=True),
            400: documented_error(f"validation_error (unknown game), {INVALID_PAGINATION}"),
            401: UNAUTHENTICATED,
        },
        summary="Open public lobbies, newest first (paginated with limit and offset)",
    )
    def get(self, request: Request) -> Response:
        query = _valid(serializers.LobbyListQuerySerializer, request.query_params)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.lobby_open_public(game=query.get("game")), request, view=self)
        return paginator.get_paginated_response(serializers.LobbyListItemSerializer(page, many=True).data)

    @extend_schema(
        request=serializers.LobbyCreateSerializer,
        responses={
            201: serializers.LobbySerializer,
            400: documented_error("validation_error, or bad_size for the game."),
            401: UNAUTHENTICATED,
            409: documented_error("already_in_lobby, ticket_active"),
        },
        summary="Create a lobby; you are its host and first member",
    )
    def post(self, request: Request) -> Response:
        data = _valid(serializers.LobbyCreateSerializer, request.data)
        lobby = _call(
            services.lobby_create, user=request.user, game=data["game"], size=data.get("size"), is_public=data["public"]
        )
        return _lobby_response(lobby, status.HTTP_201_CREATED)


class MyLobbyView(APIView):
    @extend_schema(
        responses={200: serializers.MyLobbySerializer, 401: UNAUTHENTICATED},
        summary="The lobby you are in ({\"lobby\": null} when none), so that any page can lead back to it",
    )
    def get(self, request: Request) -> Response:
        lobby = selectors.lobby_of(user=request.user)
        return Response({"lobby": selectors.lobby_snapshot(lobby=lobby) if lobby else None})


class LobbyDetailView(APIView):
    @extend_schema(
        parameters=[CODE],
        responses={200: serializers.LobbySerializer, 401: UNAUTHENTICATED, 404: documented_error("lobby_not_found")},
        summary="A lobby by code",
    )
    def get(self, request: Request, code: str) -> Response:
        lobby = selectors.lobby_by_code(code=code)
        if lobby is None:
            raise ApiError("lobby_not_found", "There is no lobby with that code.", status_code=404)
        return _lobby_response(lobby)


JOIN_ERRORS = {
    401: UNAUTHENTICATED,
    404: documented_error("lobby_not_found"),
    409: documented_error("lobby_full, lobby_closed, lobby_in_match, already_in_lobby, ticket_active"),
}


class LobbyJoinByCodeView(APIView):
    @extend_schema(
        request=serializers.LobbyJoinSerializer,
        responses={200: serializers.LobbySerializer, 400: documented_error("validation_error: malformed code"), **JOIN_ERRORS},
        summary="Join a lobby (public or private) by its code",
        operation_id="lobbies_join_by_code",
    )
    def post(self, request: Request) -> Response:
        data = _valid(serializers.LobbyJoinSerializer, request.data)
        return _lobby_response(_call(services.lobby_join, user=request.user, code=data["code"]))


class LobbyJoinView(APIView):
    @extend_schema(
        request=None,
        parameters=[CODE],
        responses={200: serializers.LobbySerializer, **JOIN_ERRORS},
        summary="Join this lobby",
    )
    def post(self, request: Request, code: str) -> Response:
        return _lobby_response(_call(services.lobby_join, user=request.user, code=code))


MEMBER_ERRORS = {401: UNAUTHENTICATED, 403: documented_error("not_a_member"), 404: documented_error("lobby_not_found")}
HOST_ERRORS = {401: UNAUTHENTICATED, 403: documented_error("not_a_member, not_host"), 404: documented_error("lobby_not_found")}


class LobbyLeaveView(APIView):
    @extend_schema(
        request=None,
        parameters=[CODE],
        responses={200: serializers.LobbySerializer, **MEMBER_ERRORS},
        summary="Leave the lobby; the next member becomes host, an empty lobby closes",
    )
    def post(self, request: Request, code: str) -> Response:
        return _lobby_response(_call(services.lobby_leave, user=request.user, code=code))


class LobbyReadyView(APIView):
    @extend_schema(
        request=serializers.ReadySerializer,
        parameters=[CODE],
        responses={
            200: serializers.LobbySerializer,
            400: documented_error("validation_error"),
            409: documented_error("lobby_closed, lobby_in_match"),
            **MEMBER_ERRORS,
        },
        summary='Mark yourself ready ({"ready": true}) or not ready ({"ready": false})',
    )
    def post(self, request: Request, code: str) -> Response:
        data = _valid(serializers.ReadySerializer, request.data)
        return _lobby_response(_call(services.lobby_set_ready, user=request.user, code=code, ready=data["ready"]))


class LobbyKickView(APIView):
    @extend_schema(
        request=serializers.KickSerializer,
        parameters=[CODE],
        responses={
            200: serializers.LobbySerializer,
            400: documented_error("validation_error, cannot_kick_self"),
            **HOST_ERRORS,
            404: documented_error("lobby_not_found, not_a_member (the user to kick)"),
        },
        summary="Remove a member (host only)",
    )
    def post(self, request: Request, code: str) -> Response:
        data = _valid(serializers.KickSerializer, request.data)
        return _lobby_response(_call(services.lobby_kick, user=request.user, code=code, user_id=data["user_id"]))


class LobbyStartView(APIView):
    @extend_schema(
        request=None,
        parameters=[CODE],
        responses={
            200: serializers.LobbySerializer,
            **HOST_ERRORS,
            409: documented_error("not_enough_players, players_not_ready, ticket_active, lobby_closed, lobby_in_match"),
        },
        summary="Start the match (host only, every other member ready); members are told where to connect",
    )
    def post(self, request: Request, code: str) -> Response:
        return _lobby_response(_call(services.lobby_start, user=request.user, code=code))


class LobbyRematchView(APIView):
    @extend_schema(
        request=None,
        parameters=[CODE],
        responses={200: serializers.LobbySerializer, **HOST_ERRORS, 409: documented_error("no_match, match_in_progress")},
        summary="Reopen the lobby after its match ended, to ready up and start again (host only)",
    )
    def post(self, request: Request, code: str) -> Response:
        return _lobby_response(_call(services.lobby_rematch, user=request.user, code=code))


# --- matchmaking -----------------------------------------------------------------------------------------------------


class TicketCreateView(APIView):
    @extend_schema(
        request=serializers.TicketCreateSerializer,
        responses={
            201: serializers.TicketSerializer,
            400: documented_error("validation_error, wrong_game"),
            401: UNAUTHENTICATED,
            403: documented_error("not_a_member, not_host (queueing a lobby)"),
            404: documented_error("lobby_not_found"),
            409: documented_error("ticket_exists, in_lobby, players_not_ready, lobby_closed, lobby_in_match"),
        },
        summary="Queue for a game, alone or with your lobby as one party; status is pushed on ws/matchmaking/",
    )
    def post(self, request: Request) -> Response:
        data = _valid(serializers.TicketCreateSerializer, request.data)
        ticket = _call(services.ticket_create, user=request.user, game=data["game"], lobby_code=data.get("lobby"))
        matchmaker.ensure_embedded()
        return Response(selectors.ticket_snapshot(ticket=ticket), status=status.HTTP_201_CREATED)


class TicketDetailView(APIView):
    @extend_schema(
        responses={200: serializers.TicketSerializer, 401: UNAUTHENTICATED, 404: documented_error("ticket_not_found")},
        summary="A ticket of yours: searching (waited, estimated wait), matched (the match), cancelled or expired",
    )
    def get(self, request: Request, ticket_id: int) -> Response:
        ticket = selectors.ticket_visible_to(user=request.user, ticket_id=ticket_id)
        if ticket is None:
            raise ApiError("ticket_not_found", "There is no such ticket of yours.", status_code=404)
        return Response(selectors.ticket_snapshot(ticket=ticket))

    @extend_schema(
        request=None,
        responses={
            200: serializers.TicketSerializer,
            401: UNAUTHENTICATED,
            404: documented_error("ticket_not_found: no such ticket, or not yours"),
            409: documented_error("ticket_not_searching: already matched, cancelled or expired"),
        },
        summary="Cancel a searching ticket (any party member may)",
    )
    def delete(self, request: Request, ticket_id: int) -> Response:
        ticket = _call(services.ticket_cancel, user=request.user, ticket_id=ticket_id)
        return Response(selectors.ticket_snapshot(ticket=ticket))


# --- leaderboards and history ----------------------------------------------------------------------------------------


def _entry(rating: Rating, rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "user": selectors.user_brief(rating.user),
        "rating": round(rating.ordinal, 3),
        "display_rating": display_rating(rating.ordinal),
        "mu": round(rating.mu, 3),
        "sigma": round(rating.sigma, 3),
        "matches": rating.matches,
        "wins": rating.wins,
    }


class LeaderboardView(APIView):
    @extend_schema(
        responses={
            200: serializers.LeaderboardPageSerializer,
            400: documented_error(INVALID_PAGINATION),
            401: UNAUTHENTICATED,
            404: documented_error("unknown_game"),
        },
        parameters=[OpenApiParameter("game", str, OpenApiParameter.PATH, enum=sorted(GAMES)), *PAGINATION_PARAMETERS],
        summary="A game's leaderboard by rating (paginated), with your own rank",
    )
    def get(self, request: Request, game: str) -> Response:
        if game not in GAMES:
            raise ApiError("unknown_game", f"There is no game called {game!r}.", status_code=404)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.leaderboard(game=game), request, view=self)
        first_rank = paginator.offset + 1
        mine = selectors.rating_of(user=request.user, game=game)
        body = paginator.get_paginated_response([_entry(r, first_rank + i) for i, r in enumerate(page)]).data
        body["me"] = _entry(mine, selectors.rating_rank(rating=mine)) if mine else None
        return Response(body)


def _history_entry(seat, seats: list, change) -> dict[str, Any]:
    match = seat.match
    return {
        "match": match_pointer(match.pk),
        "game": match.game,
        "finished_at": match.finished_at,
        "players": len(seats),
        "placing": seat.placing,
        "score": seat.score,
        "abandoned": seat.abandoned,
        "opponents": [
            {**selectors.user_brief(other.user), "seat": other.seat, "placing": other.placing}
            for other in seats
            if other.user_id != seat.user_id
        ],
        "rating": _rating_change(change) if change else None,
    }


def _rating_change(change: RatingChange) -> dict[str, float | int]:
    before, after = display_rating(change.ordinal_before), display_rating(change.ordinal_after)
    return {
        "before": round(change.ordinal_before, 3),
        "after": round(change.ordinal_after, 3),
        "delta": round(change.delta, 3),
        # The delta of the shown numbers, not the rounded delta: before + delta is after on screen too.
        "display_before": before,
        "display_after": after,
        "display_delta": after - before,
    }


class HistoryView(APIView):
    @extend_schema(
        operation_id="history_list",
        responses={
            200: serializers.HistoryEntrySerializer(many=True),
            400: documented_error(INVALID_PAGINATION),
            401: UNAUTHENTICATED,
            404: documented_error("user_not_found"),
        },
        parameters=PAGINATION_PARAMETERS,
        summary="Finished matches of a player (yourself without user_id), newest first, with opponents and rating changes",
    )
    def get(self, request: Request, user_id: int | None = None) -> Response:
        user = request.user if user_id is None else User.objects.filter(pk=user_id).first()
        if user is None:
            raise ApiError("user_not_found", "There is no such user.", status_code=404)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.match_history(user=user), request, view=self)
        match_ids = [seat.match_id for seat in page]
        changes = selectors.rating_changes_by_match(user=user, match_ids=match_ids)
        seats = selectors.match_seats(match_ids=match_ids)
        entries = [_history_entry(s, seats.get(s.match_id, []), changes.get(s.match_id)) for s in page]
        return paginator.get_paginated_response(entries)


class UserHistoryView(HistoryView):
    @extend_schema(
        operation_id="history_of_user",
        responses={
            200: serializers.HistoryEntrySerializer(many=True),
            400: documented_error(INVALID_PAGINATION),
            401: UNAUTHENTICATED,
            404: documented_error("user_not_found"),
        },
        parameters=PAGINATION_PARAMETERS,
        summary="Finished matches of another player, newest first, with opponents and rating changes",
    )
    def get(self, request: Request, user_id: int | None = None) -> Response:
        return super().get(request, user_id)


class MatchRatingsView(APIView):
    @extend_schema(
        responses={200: serializers.MatchRatingSerializer(many=True), 401: UNAUTHENTICATED},
        summary="Rating changes one finished match caused (empty until it is recorded, or for a cancelled match)",
    )
    def get(self, request: Request, match_id: int) -> Response:
        changes = selectors.rating_changes_of_match(match_id=match_id)
        return Response(
            [{"user_id": c.user_id, "username": c.user.username, "rating": _rating_change(c)} for c in changes]
        )
