"""Games and matches REST API: the game catalogue, creating a match (inviting the other players), answering
invitations, reading matches."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from games import replay, selectors, serializers, services
from games.models import Match
from games.rules import GAMES
from gameserver.accounts.models import User
from gameserver.api_errors import INVALID_PAGINATION, ApiError, documented_error


class GameListView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses={200: serializers.GameSerializer(many=True)}, summary="The games this server runs")
    def get(self, request: Request) -> Response:
        return Response([asdict(game.settings) for game in GAMES.values()])


class MatchListCreateView(generics.ListAPIView):
    serializer_class = serializers.MatchSerializer
    throttle_scope = "invite"

    def get_throttles(self):
        # Only creating is limited: each invitation is announced on every page the invited players have open
        # (match.created), so one user must not be able to fill someone's screen with them.
        return [ScopedRateThrottle()] if self.request.method == "POST" else []

    def get_queryset(self):
        queryset = Match.objects.filter(players__user=self.request.user).prefetch_related("players__user")
        if status_filter := self.request.query_params.get("status"):
            if status_filter not in Match.Status.values:
                raise ApiError("validation_error", f"status must be one of: {', '.join(Match.Status.values)}.")
            queryset = queryset.filter(status=status_filter)
        if game := self.request.query_params.get("game"):
            queryset = queryset.filter(game=game)
        return queryset.order_by("-created_at")

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=[s.value for s in Match.Status]), OpenApiParameter("game", str)],
        summary="The caller's matches, newest first",
        responses={
            200: serializers.MatchSerializer(many=True),
            400: documented_error(f"validation_error (unknown status), {INVALID_PAGINATION}"),
            401: documented_error("not_authenticated"),
        },
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=serializers.MatchCreateSerializer,
        responses={
            201: serializers.MatchSerializer,
            400: documented_error("validation_error, unknown_game, unknown_player, duplicate_player, wrong_player_count, inactive_player"),
            403: documented_error("not_a_player: the caller must be one of the players"),
            429: documented_error("throttled: over THROTTLE_INVITE matches created per user"),
        },
        summary="Invite players to a match (status \"invited\" until all accept; lobbies and matchmaking need no invitation)",
    )
    def post(self, request: Request) -> Response:
        data = serializers.MatchCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        names = data.validated_data["players"]
        if request.user.username not in names:
            raise ApiError("not_a_player", "You can only create matches you play in.", status_code=403)
        users = {user.username: user for user in User.objects.filter(username__in=names)}
        missing = [name for name in names if name not in users]
        if missing:
            raise ApiError("unknown_player", f"No such user: {', '.join(missing[:5])}.")
        try:
            match = services.match_create(
                game=data.validated_data["game"], users=[users[n] for n in names], source="api", invited_by=request.user
            )
        except services.MatchError as exc:
            raise ApiError(exc.code, str(exc)) from None
        _ensure_deadline_sweeps()
        return Response(serializers.MatchSerializer(match).data, status=status.HTTP_201_CREATED)


class MatchDetailView(generics.RetrieveAPIView):
    serializer_class = serializers.MatchSerializer
    queryset = Match.objects.prefetch_related("players__user")

    @extend_schema(responses={200: serializers.MatchSerializer, 404: documented_error("not_found")}, summary="One match, with results once finished")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class WatchableMatchListView(generics.ListAPIView):
    """GET /api/matches/live/: waiting and running matches of games that allow spectators, newest first."""

    serializer_class = serializers.WatchableMatchSerializer

    def get_queryset(self):
        watchable = [slug for slug, game in GAMES.items() if game.settings.spectators_allowed]
        queryset = Match.objects.defer("input_log").filter(status__in=Match.ACTIVE, game__in=watchable)
        if game := self.request.query_params.get("game"):
            queryset = queryset.filter(game=game)
        return queryset.prefetch_related("players__user").order_by("-created_at")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "spectators": selectors.spectator_counts()}

    @extend_schema(
        parameters=[OpenApiParameter("game", str)],
        summary="Live matches one may watch (connect to ws_path as a spectator), newest first",
        responses={200: serializers.WatchableMatchSerializer(many=True), 400: documented_error(INVALID_PAGINATION)},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class MatchReplayView(APIView):
    """GET /api/matches/<id>/replay/: a finished match's game, settings, players, seed, input log and timeline."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "replay"  # shared with the frames: a match not cached costs a replay of its rules

    @extend_schema(
        summary="What a client needs to replay a finished match (REPLAY_VISIBILITY decides who may)",
        responses={
            200: serializers.ReplaySerializer,
            403: documented_error("not_allowed: replays of this match are for its players"),
            404: documented_error("not_found"),
            409: documented_error("not_replayable: the match is not finished (waiting, running or cancelled)"),
            429: documented_error("throttled: over THROTTLE_REPLAY (replay and frames requests together)"),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        match = _replayable(request, pk)
        ticks, events = replay.cached_replay(match=match)
        players = match.players.select_related("user").order_by("seat")
        return Response(serializers.ReplaySerializer({
            "match": match.pk, "game": match.game, "settings": asdict(GAMES[match.game].settings),
            "players": players, "seed": match.seed, "ticks": ticks, "end_reason": match.end_reason,
            "duration_seconds": match.duration_seconds, "input_log": match.input_log or [], "events": events,
            "chunk_ticks": replay.CHUNK_TICKS, "frames_url": f"/api/matches/{match.pk}/replay/frames/",
        }).data)


class MatchReplayFramesView(APIView):
    """GET /api/matches/<id>/replay/frames/?start=<tick>: the state at each tick of one chunk, computed on the server
    by replaying the rules (once: chunks are cached)."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "replay"

    @extend_schema(
        summary="A finished match's snapshot at every tick of one chunk (from ?start=, a multiple of chunk_ticks)",
        parameters=[OpenApiParameter("start", int, description="0, chunk_ticks, 2 * chunk_ticks, ... up to ticks")],
        responses={
            200: serializers.ReplayFramesSerializer,
            400: documented_error("validation_error: start is not a chunk's first tick within the match"),
            403: documented_error("not_allowed"),
            404: documented_error("not_found"),
            409: documented_error("not_replayable"),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        match = _replayable(request, pk)
        ticks, _ = replay.cached_replay(match=match)
        raw = request.query_params.get("start", "0")
        start = int(raw) if raw.isdigit() and len(raw) < 10 else -1
        if start < 0 or start % replay.CHUNK_TICKS or start > ticks:
            raise ApiError("validation_error", f"start must be a multiple of {replay.CHUNK_TICKS} from 0 to {ticks}.")
        following = start + replay.CHUNK_TICKS
        return Response(serializers.ReplayFramesSerializer({
            "start": start, "frames": replay.cached_frames(match=match, start=start),
            "next": following if following <= ticks else None,
        }).data)


def _replayable(request: Request, pk: int) -> Match:
    match = Match.objects.defer("input_log").filter(pk=pk).first()
    if match is None or match.game not in GAMES:
        raise ApiError("not_found", "No such match.", status_code=404)
    if not selectors.replay_visible_to(match=match, user=request.user):
        raise ApiError("not_allowed", "Replays of this match are for its players.", status_code=403)
    if match.status != Match.Status.FINISHED:
        raise ApiError("not_replayable", f"The match is {match.status}: only finished matches have a replay.", status_code=409)
    return Match.objects.get(pk=pk)  # with its input log now


class InvitationListView(generics.ListAPIView):
    serializer_class = serializers.MatchSerializer

    def get_queryset(self):
        return (
            Match.objects.filter(
                status=Match.Status.INVITED, players__user=self.request.user, players__accepted=False
            )
            .prefetch_related("players__user")
            .order_by("-created_at")
        )

    @extend_schema(
        summary="Matches the caller is invited to and has not answered yet, newest first",
        responses={200: serializers.MatchSerializer(many=True), 401: documented_error("not_authenticated")},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class InvitationAnswerView(APIView):
    """POST /api/matches/<id>/accept/ and /decline/: the invited player's answer."""

    answer: str = "accept"

    @extend_schema(
        request=None,
        responses={
            200: serializers.MatchSerializer,
            404: documented_error("not_found: no such match, or the caller has no seat in it"),
            409: documented_error("invitation_closed: the match is no longer waiting for answers"),
        },
        summary="Answer an invitation: accept (the last acceptance makes the match playable) or decline (cancels it)",
    )
    def post(self, request: Request, pk: int) -> Response:
        answer = services.match_invitation_accept if self.answer == "accept" else services.match_invitation_decline
        try:
            match = answer(match_id=pk, user=request.user)
        except services.MatchError as exc:
            raise ApiError(exc.code, str(exc), status_code=exc.status_code) from None
        _ensure_deadline_sweeps()
        return Response(serializers.MatchSerializer(Match.objects.prefetch_related("players__user").get(pk=match.pk)).data)


def _ensure_deadline_sweeps() -> None:
    """A match with a deadline now exists: make sure this process sweeps deadlines even if no socket ever opens here.
    The in-process matchmaker loop does (services.match_cancel_overdue); with MATCHMAKER_IN_PROCESS off, the
    matchmaker worker does."""
    from lobby import matchmaker  # lobby builds on games; imported here, where it is needed, not at module load

    matchmaker.ensure_embedded()
