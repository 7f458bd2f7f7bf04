"""The admin site with its login throttled like every other login (services.user_authenticate), 429 when refused."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest, HttpResponse

from gameserver.accounts import services
from gameserver.clientaddr import client_ip


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """Django's admin login form, checking the password through our service instead of calling authenticate()
    itself, so that admin guesses count in the same per-account and per-address buckets as the API's."""

    retry_after: int | None = None

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            try:
                self.user_cache = services.user_authenticate(username=username, password=password, client_ip=client_ip(self.request))
            except services.LoginThrottled as exc:
                self.retry_after = exc.retry_after
                raise forms.ValidationError(str(exc), code="throttled") from None
            except services.AccountBanned:
                raise forms.ValidationError(self.error_messages["inactive"], code="inactive") from None
            except services.InvalidCredentials:
                raise self.get_invalid_login_error() from None
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class GameAdminSite(admin.AdminSite):
    login_form = ThrottledAdminLoginForm

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        response = super().login(request, extra_context)
        form = getattr(response, "context_data", {}).get("form") if hasattr(response, "context_data") else None
        if isinstance(form, ThrottledAdminLoginForm) and form.retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response
