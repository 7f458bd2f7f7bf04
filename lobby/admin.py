"""Admin for lobbies, tickets and ratings; the actions go through the services so that clients hear of them."""

from __future__ import annotations

from django.contrib import admin, messages

from lobby import ratings, services
from lobby.models import Lobby, LobbyMember, Rating, RatingChange, Ticket, TicketMember


class LobbyMemberInline(admin.TabularInline):
    model = LobbyMember
    extra = 0
    fields = ["user", "ready", "joined_at"]
    readonly_fields = fields


@admin.register(Lobby)
class LobbyAdmin(admin.ModelAdmin):
    list_display = ["code", "game", "status", "is_public", "size", "host", "match", "created_at"]
    list_filter = ["status", "game", "is_public"]
    search_fields = ["code", "host__username"]
    readonly_fields = ["code", "game", "size", "is_public", "status", "host", "match", "created_at", "closed_at"]
    inlines = [LobbyMemberInline]
    actions = ["close_lobbies"]

    @admin.action(description="Close selected lobbies (members are sent away)")
    def close_lobbies(self, request, queryset):
        closing = list(queryset.exclude(status=Lobby.Status.CLOSED))
        for lobby in closing:
            services.lobby_close(lobby=lobby)
        self.message_user(request, f"Closed {len(closing)} lobby(ies).", messages.SUCCESS)


class TicketMemberInline(admin.TabularInline):
    model = TicketMember
    extra = 0
    fields = ["user", "active"]
    readonly_fields = fields


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ["id", "game", "status", "owner", "size", "rating", "created_at", "ended_at", "match"]
    list_filter = ["status", "game"]
    search_fields = ["owner__username", "members__user__username"]
    readonly_fields = ["owner", "game", "status", "size", "rating", "created_at", "expires_at", "ended_at", "match"]
    inlines = [TicketMemberInline]
    actions = ["cancel_tickets"]

    @admin.action(description="Cancel selected searching tickets")
    def cancel_tickets(self, request, queryset):
        cancelled = 0
        for ticket in queryset.filter(status=Ticket.Status.SEARCHING):
            try:
                services.ticket_cancel(user=None, ticket_id=ticket.pk)
                cancelled += 1
            except services.LobbyError:
                pass  # matched or expired meanwhile: nothing left to cancel
        self.message_user(request, f"Cancelled {cancelled} ticket(s).", messages.SUCCESS)


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ["user", "game", "ordinal", "mu", "sigma", "matches", "wins", "updated_at"]
    list_filter = ["game"]
    search_fields = ["user__username"]
    readonly_fields = ["user", "game", "mu", "sigma", "ordinal", "matches", "wins", "updated_at"]
    actions = ["reset_ratings"]

    @admin.action(description="Reset selected ratings to a newcomer's")
    def reset_ratings(self, request, queryset):
        count = 0
        for rating in queryset:
            ratings.rating_reset(rating=rating)
            count += 1
        self.message_user(request, f"Reset {count} rating(s).", messages.SUCCESS)


@admin.register(RatingChange)
class RatingChangeAdmin(admin.ModelAdmin):
    list_display = ["match", "user", "game", "rank", "ordinal_before", "ordinal_after", "created_at"]
    list_filter = ["game"]
    search_fields = ["user__username"]
    readonly_fields = [f.name for f in RatingChange._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
