"""Admin for users: search, filters, and ban / unban actions that go through the services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from gameserver.accounts import services
from gameserver.accounts.models import User


class BannedFilter(admin.SimpleListFilter):
    title = "banned"
    parameter_name = "banned"

    def lookups(self, request, model_admin):
        return [("yes", "Banned"), ("no", "Not banned")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(banned_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(banned_at__isnull=True)
        return queryset


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "date_joined", "last_login", "is_staff", "banned_at"]
    list_filter = [BannedFilter, "is_staff", "is_superuser", "is_active", "date_joined"]
    search_fields = ["username", "email", "first_name", "last_name"]
    readonly_fields = ["banned_at", "ban_reason", "last_login", "date_joined"]
    fieldsets = DjangoUserAdmin.fieldsets + (("Ban", {"fields": ["banned_at", "ban_reason"]}),)
    actions = ["ban_users", "unban_users"]

    @admin.action(description="Ban selected users (log them out everywhere)")
    def ban_users(self, request, queryset):
        banned = 0
        for user in queryset.filter(banned_at__isnull=True).exclude(pk=request.user.pk):
            services.user_ban(user=user, reason=f"Banned by {request.user.username} in the admin.")
            banned += 1
        self.message_user(request, f"Banned {banned} user(s).", messages.SUCCESS)

    @admin.action(description="Unban selected users")
    def unban_users(self, request, queryset):
        unbanned = 0
        for user in queryset.filter(banned_at__isnull=False):
            services.user_unban(user=user)
            unbanned += 1
        self.message_user(request, f"Unbanned {unbanned} user(s).", messages.SUCCESS)
