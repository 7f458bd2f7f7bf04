"""Admin for matches: browse with players and results, create one for chosen players, rematch, cancel; and the
live-match console (/admin/games/match/live/): live matches across every process, refreshed every second, from which
staff end a match (with or without its result), kick a player or send the players a notice.

Matches created here need no invitation (staff seat players, as lobbies and matchmaking do); a cancel reaches the
running match within a tick (services.match_cancel), and so does every console action (games/engine/control.py)."""

from __future__ import annotations

import logging

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from games import selectors, services
from games.models import Match, MatchPlayer
from games.rules import GAMES
from gameserver.accounts.models import User

log = logging.getLogger(__name__)


class MatchPlayerInline(admin.TabularInline):
    model = MatchPlayer
    extra = 0
    can_delete = False
    readonly_fields = ["seat", "user", "accepted", "connected", "placing", "score", "abandoned"]

    def has_add_permission(self, request, obj=None):
        return False


class MatchCreateForm(forms.ModelForm):
    players = forms.ModelMultipleChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        help_text="Seats are given in username order.",
    )

    class Meta:
        model = Match
        fields = ["game"]
        widgets = {"game": forms.Select(choices=[])}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["game"].widget.choices = [(slug, game.settings.name) for slug, game in sorted(GAMES.items())]

    def clean(self):
        cleaned = super().clean()
        players = list(cleaned.get("players") or [])
        try:
            self.created = services.match_create(game=cleaned.get("game", ""), users=players, source="admin")
        except services.MatchError as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned


@admin.register(Match)
class MatchAdmin(admin.ModelAdmin):
    list_display = ["id", "game", "status", "source", "created_at", "join_deadline", "duration_seconds", "end_reason"]
    list_filter = ["status", "game", "source", "created_at"]
    search_fields = ["=id", "players__user__username"]
    inlines = [MatchPlayerInline]
    actions = ["rematch", "cancel"]
    readonly_fields = ["game", "status", "seed", "source", "created_at", "invite_expires_at", "join_deadline", "started_at",
                       "finished_at", "duration_seconds", "ticks", "end_reason", "input_log"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = MatchCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["game", "players"] if obj is None else super().get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.pk = form.created.pk  # created by the service in the form's clean(), so that the seats exist too

    def response_add(self, request: HttpRequest, obj, post_url_continue=None):
        self.message_user(request, f"Created match #{obj.pk}: players connect to /ws/matches/{obj.pk}/.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:games_match_change", args=[obj.pk]))

    def log_addition(self, request, obj, message):
        return super().log_addition(request, Match.objects.get(pk=obj.pk), message)

    # A match that is not over is cancelled, not deleted: deleting it would leave its tick loop playing on with
    # nowhere to record the result, and its players untold.
    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or obj.status not in Match.OPEN)

    def delete_queryset(self, request, queryset):
        open_matches = queryset.filter(status__in=Match.OPEN).count()
        if open_matches:
            self.message_user(request, f"Kept {open_matches} match(es) that are not over: cancel them first.", messages.WARNING)
        super().delete_queryset(request, queryset.exclude(status__in=Match.OPEN))

    @admin.action(description="Rematch: a new match with the same players")
    def rematch(self, request, queryset):
        created = 0
        for match in queryset.prefetch_related("players__user"):
            users = [p.user for p in match.players.order_by("seat")]
            try:
                services.match_create(game=match.game, users=users, source="admin")
                created += 1
            except services.MatchError as exc:
                self.message_user(request, f"Match #{match.pk}: {exc}", messages.WARNING)
        self.message_user(request, f"Created {created} match(es).", messages.SUCCESS)

    @admin.action(description="Cancel selected matches that have not finished (running ones stop within a tick)")
    def cancel(self, request, queryset):
        cancelled = sum(services.match_cancel(match_id=m.pk, reason="cancelled_by_admin") for m in queryset)
        self.message_user(request, f"Cancelled {cancelled} match(es).", messages.SUCCESS)

    # --- the live-match console ---------------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("live/", view(self.live_view), name="games_match_live"),
            path("live/data/", view(self.live_data), name="games_match_live_data"),
            path("live/<int:match_id>/<str:action>/", view(require_POST(self.live_action)), name="games_match_live_action"),
            *super().get_urls(),
        ]

    def live_view(self, request: HttpRequest):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Live matches",
            "opts": self.model._meta,
            "can_act": self.has_change_permission(request),
        }
        return TemplateResponse(request, "admin/games/match/live.html", context)

    def live_data(self, request: HttpRequest):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            rows = selectors.live_matches()
        except Exception as exc:  # Redis away: say so on the page, which keeps polling
            return JsonResponse({"error": "service_unavailable", "message": f"Live state unavailable: {exc}"}, status=503)
        return JsonResponse({"matches": rows})

    def live_action(self, request: HttpRequest, match_id: int, action: str):
        """POST end (with "result": "1" to record it), kick ("seat") or notice ("text"): JSON {"ok": true} or
        {"error": code, "message": text} with 400, 404 or 409; 503 when Redis cannot be reached."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        data = request.POST
        try:
            if action == "end":
                services.match_end_live(match_id=match_id, user=request.user, record_result=data.get("result") == "1")
            elif action == "kick":
                seat = data.get("seat", "")
                if not seat.isdigit():
                    raise services.MatchError("bad_seat", "seat must be a seat number.")
                services.match_kick(match_id=match_id, seat=int(seat), user=request.user)
            elif action == "notice":
                services.match_notice(match_id=match_id, text=data.get("text", ""), user=request.user)
            else:
                return JsonResponse({"error": "unknown_action", "message": f"No console action {action!r}."}, status=404)
        except services.MatchError as exc:
            return JsonResponse({"error": exc.code, "message": str(exc)}, status=exc.status_code)
        except Exception as exc:  # the channel layer (Redis) could not be reached: nothing was sent or logged
            log.exception("live-match console: %s on match %s failed", action, match_id)
            return JsonResponse({"error": "service_unavailable", "message": f"Could not reach the match: {exc}"}, status=503)
        return JsonResponse({"ok": True})
