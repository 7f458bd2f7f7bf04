"""DRF token authentication that names a ban instead of DRF's generic 'inactive or deleted'."""

from __future__ import annotations

from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        model = self.get_model()
        try:
            token = model.objects.select_related("user").get(key=key)
        except model.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid token.", code="invalid_token") from None
        if token.user.is_banned:
            raise exceptions.AuthenticationFailed("This account is banned.", code="account_banned")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This account is disabled.", code="account_disabled")
        return (token.user, token)
