"""Admin for matches: browse with players and results, create one for chosen players, rematch, cancel.

Matches created here need no invitation (staff seat players, as lobbies and matchmaking do); a cancel reaches the
running match within a tick (services.match_cancel)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from games import services
from games.models import Match, MatchPlayer
from games.rules import GAMES
from gameserver.accounts.models import User


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
