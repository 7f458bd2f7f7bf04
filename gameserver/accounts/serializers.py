"""Shapes of the accounts API. Serializers validate and shape; the services change state."""

from __future__ import annotations

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from gameserver.accounts.models import User


class UserSerializer(serializers.ModelSerializer):
    # Output only, and often blank: documented as a plain string, not as `format: email`.
    email = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "date_joined"]
        read_only_fields = fields


def _validate_password(password: str, user: User | None) -> str:
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(list(exc.messages)) from None
    return password


class RegisterSerializer(serializers.Serializer):
    username = serializers.RegexField(
        r"^[\w.@+-]+\Z",
        max_length=150,
        min_length=3,
        error_messages={"invalid": "Use letters, digits and @ . + - _ only."},
    )
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)

    def validate_username(self, value: str) -> str:
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("That username is taken.", code="unique")
        return value

    def validate(self, attrs: dict) -> dict:
        candidate = User(username=attrs["username"], email=attrs.get("email", ""))
        try:
            _validate_password(attrs["password"], candidate)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"password": exc.detail}) from None
        return attrs


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenLoginResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    user = UserSerializer()


class SessionLoginResponseSerializer(serializers.Serializer):
    user = UserSerializer()


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)

    def validate_old_password(self, value: str) -> str:
        if not self.context["request"].user.check_password(value):
            raise serializers.ValidationError("The current password is wrong.", code="wrong_password")
        return value

    def validate_new_password(self, value: str) -> str:
        return _validate_password(value, self.context["request"].user)


class PasswordChangeResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The new token; the old one no longer works.")


class WsTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds the ticket stays valid; it works once.")
