"""Shapes of the games and matches API."""

from __future__ import annotations

from rest_framework import serializers

from games.models import Match, MatchPlayer


class GameSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    min_players = serializers.IntegerField()
    max_players = serializers.IntegerField()
    tick_rate = serializers.IntegerField()
    match_seconds = serializers.FloatField()
    countdown_seconds = serializers.FloatField()
    reconnect_grace_seconds = serializers.FloatField()
    pause_on_disconnect = serializers.BooleanField(help_text="1-v-1 matches pause while a player is disconnected.")
    spectators_allowed = serializers.BooleanField()
    spectator_delay_seconds = serializers.FloatField()
    abandon_rule = serializers.CharField()
    input_fields = serializers.ListField(child=serializers.CharField(), help_text="The order of compact v2 inputs.")
    turn_seconds = serializers.FloatField(allow_null=True, help_text="Turn timer of a turn-based game, else null.")
    end_reasons = serializers.ListField(child=serializers.CharField(), help_text="The game's own end reasons.")


class MatchCreateSerializer(serializers.Serializer):
    game = serializers.CharField(max_length=40)
    players = serializers.ListField(
        child=serializers.CharField(max_length=150), min_length=1, max_length=16,
        help_text="Usernames in seat order; must include the caller. The others are invited: the match starts "
        "once every one of them accepted (POST /api/matches/<id>/accept/).",
    )


class MatchPlayerSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = MatchPlayer
        fields = ["seat", "user_id", "username", "placing", "score", "abandoned", "accepted", "connected"]


class MatchSerializer(serializers.ModelSerializer):
    players = MatchPlayerSerializer(many=True)
    ws_path = serializers.SerializerMethodField(help_text="Where players and spectators connect.")

    class Meta:
        model = Match
        fields = ["id", "game", "status", "source", "created_at", "invite_expires_at", "join_deadline", "started_at",
                  "finished_at", "duration_seconds", "ticks", "end_reason", "players", "ws_path"]

    def get_ws_path(self, match: Match) -> str:
        return f"/ws/matches/{match.pk}/"


class ReplaySerializer(serializers.Serializer):
    """GET /api/matches/<id>/replay/: everything a client needs to replay a finished match (docs/games.md, "Replays")."""

    match = serializers.IntegerField()
    game = serializers.CharField()
    settings = GameSerializer()
    players = MatchPlayerSerializer(many=True)
    seed = serializers.IntegerField()
    ticks = serializers.IntegerField(help_text="The last tick: frames run from 0 to ticks.")
    end_reason = serializers.CharField()
    duration_seconds = serializers.FloatField(allow_null=True)
    input_log = serializers.ListField(
        child=serializers.ListField(), help_text="[[tick, seat, input or null (the seat was removed)], ...] in the order "
        "the engine applied them: a client with the rules replays the match from seed and log alone.")
    events = serializers.ListField(child=serializers.DictField(), help_text="The timeline: [{tick, type, ...}].")
    chunk_ticks = serializers.IntegerField(help_text="Frames come in chunks of this many ticks.")
    frames_url = serializers.CharField()


class ReplayFramesSerializer(serializers.Serializer):
    start = serializers.IntegerField(help_text="The first frame's tick (a multiple of chunk_ticks).")
    frames = serializers.ListField(
        child=serializers.DictField(), help_text="[{tick, removed, state}, ...]: the game's snapshot state at each tick.")
    next = serializers.IntegerField(allow_null=True, help_text="The next chunk's start, null after the last.")


class WatchableMatchSerializer(serializers.ModelSerializer):
    """GET /api/matches/live/: a live match one may watch."""

    status = serializers.CharField(help_text='"waiting" (for its players to connect) or "running".')
    players = serializers.SerializerMethodField()
    spectators = serializers.SerializerMethodField(help_text="Watching now, over every process (null: not known).")
    spectator_delay_seconds = serializers.SerializerMethodField()
    ws_path = serializers.SerializerMethodField()

    class Meta:
        model = Match
        fields = ["id", "game", "status", "source", "started_at", "players", "spectators", "spectator_delay_seconds",
                  "ws_path"]

    def get_players(self, match: Match) -> list[dict]:
        return [{"seat": p.seat, "user_id": p.user_id, "username": p.user.username} for p in match.players.all()]

    def get_spectators(self, match: Match) -> int | None:
        counts = self.context.get("spectators")
        return None if counts is None else counts.get(match.pk, 0)

    def get_spectator_delay_seconds(self, match: Match) -> float:
        from games.rules import GAMES

        return GAMES[match.game].settings.spectator_delay_seconds

    def get_ws_path(self, match: Match) -> str:
        return f"/ws/matches/{match.pk}/"
