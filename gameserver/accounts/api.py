"""Accounts REST API: register, log in (token or session), log out, current user, password, WebSocket tickets."""

from __future__ import annotations

from django.contrib.auth import login, logout, update_session_auth_hash
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from gameserver.accounts import serializers, services
from gameserver.api_errors import ApiError, documented_error
from gameserver.clientaddr import client_ip


def _throttled(exc: services.Throttled, code: str) -> ApiError:
    error = ApiError(code, str(exc), status_code=status.HTTP_429_TOO_MANY_REQUESTS)
    error.retry_after = exc.retry_after  # type: ignore[attr-defined]  # read by the exception handler: Retry-After
    return error


def _authenticate(request: Request) -> services.User:
    data = serializers.LoginSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        return services.user_authenticate(
            username=data.validated_data["username"],
            password=data.validated_data["password"],
            client_ip=client_ip(request),
        )
    except services.LoginThrottled as exc:
        raise _throttled(exc, "login_throttled") from None
    except services.AccountBanned:
        raise ApiError("account_banned", "This account is banned.", status_code=403) from None
    except services.InvalidCredentials:
        raise ApiError("invalid_credentials", "Wrong username or password.", status_code=401) from None


class RegisterView(APIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=serializers.RegisterSerializer,
        responses={201: serializers.TokenLoginResponseSerializer, 400: documented_error("Invalid fields, taken username, weak password."), 429: documented_error("Too many sign-ups from this address.")},
        summary="Create an account and get a token",
    )
    def post(self, request: Request) -> Response:
        # Counted before validation, as on the page: every attempt counts, a malformed one too.
        try:
            services.signup_check_throttle(client_ip=client_ip(request))
        except services.SignupThrottled as exc:
            raise _throttled(exc, "throttled") from None
        data = serializers.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        token = services.token_for(user=user)
        body = {"token": token.key, "user": serializers.UserSerializer(user).data}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenLoginView(APIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=serializers.LoginSerializer,
        responses={
            200: serializers.TokenLoginResponseSerializer,
            400: documented_error("Missing or invalid fields."),
            401: documented_error("invalid_credentials"),
            403: documented_error("account_banned"),
            429: documented_error("login_throttled: too many failed logins; see Retry-After."),
        },
        summary="Log in a game client: returns a token for the Authorization header",
    )
    def post(self, request: Request) -> Response:
        user = _authenticate(request)
        token = services.token_for(user=user)
        return Response({"token": token.key, "user": serializers.UserSerializer(user).data})


class SessionLoginView(APIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=serializers.LoginSerializer,
        responses={
            200: serializers.SessionLoginResponseSerializer,
            400: documented_error("Missing or invalid fields."),
            401: documented_error("invalid_credentials"),
            403: documented_error("account_banned"),
            429: documented_error("login_throttled"),
        },
        summary="Log in a browser: sets the session cookie",
    )
    def post(self, request: Request) -> Response:
        user = _authenticate(request)
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        return Response({"user": serializers.UserSerializer(user).data})


class LogoutView(APIView):
    @extend_schema(request=None, responses={204: None, 401: documented_error("not_authenticated")}, summary="Log out: revokes this token or ends this session, and closes the WebSockets opened with it")
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, Token):
            services.token_revoke(token=request.auth)
        else:
            if request.session.session_key:
                services.session_revoke(session_key=request.session.session_key)
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses={200: serializers.UserSerializer, 401: documented_error("not_authenticated")}, summary="The current user")
    def get(self, request: Request) -> Response:
        return Response(serializers.UserSerializer(request.user).data)


class PasswordChangeView(APIView):
    @extend_schema(
        request=serializers.PasswordChangeSerializer,
        responses={200: serializers.PasswordChangeResponseSerializer, 400: documented_error("Wrong current password or weak new one."), 401: documented_error("not_authenticated")},
        summary="Change the password: the token is replaced; other sessions, tickets and sockets are revoked",
    )
    def post(self, request: Request) -> Response:
        data = serializers.PasswordChangeSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        token = services.user_change_password(user=request.user, new_password=data.validated_data["new_password"])
        if not isinstance(request.auth, Token):
            update_session_auth_hash(request._request, request.user)
        return Response({"token": token.key})


class WsTicketView(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "ws_ticket"

    @extend_schema(request=None, responses={201: serializers.WsTicketSerializer, 401: documented_error("not_authenticated"), 429: documented_error("throttled")}, summary="A single-use ticket for opening a WebSocket (?ticket=...)")
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, Token):
            credential = request.auth.key
        else:
            credential = request.session.session_key or ""
        ticket = services.ws_ticket_issue(user=request.user, credential=credential)
        return Response({"ticket": ticket.ticket, "expires_in": ticket.expires_in}, status=status.HTTP_201_CREATED)
