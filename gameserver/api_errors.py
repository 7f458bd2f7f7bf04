"""One error shape for the whole API: {"error": code, "message": text, "fields": {name: [text, ...]}}.

Clients switch on "error" (stable snake_case codes); "message" is for people; "fields" appears on validation errors.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """Raised by views for a domain error: ApiError("lobby_full", "The lobby is full.", status=409)."""

    def __init__(self, code: str, message: str, *, status_code: int = status.HTTP_400_BAD_REQUEST):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code


log = logging.getLogger(__name__)

# What an unreachable PostgreSQL or Redis raises: refused or dropped connections, timeouts, a server still loading its
# dataset (BusyLoadingError is a ConnectionError) or a replica that is read-only after a failover. Other database
# errors (integrity, programming) are bugs and stay 500s.
SERVICE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
)


def is_service_error(exc: BaseException) -> bool:
    return isinstance(exc, SERVICE_ERRORS)


class ServiceUnavailable(exceptions.APIException):
    """503 with Retry-After: PostgreSQL or Redis, which this request needs, is unreachable for now."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service this request needs is unreachable for the moment; try again shortly."
    default_code = "service_unavailable"

    def __init__(self, cause: BaseException | None = None):
        super().__init__()
        self.retry_after = settings.SERVICE_UNAVAILABLE_RETRY_AFTER
        if cause is not None:
            log.warning("503 service_unavailable: %s: %s", type(cause).__name__, str(cause).strip()[:200])


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


_DEFAULT_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    414: "query_too_long",
    415: "unsupported_media_type",
    429: "throttled",
    503: "service_unavailable",
    431: "headers_too_large",
}


def _flatten(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [msg for value in detail.values() for msg in _flatten(value)]
    if isinstance(detail, list):
        return [msg for value in detail for msg in _flatten(value)]
    return [str(detail)]


def _fields(detail: dict) -> dict[str, list[str]]:
    return {name: _flatten(value) for name, value in detail.items()}


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        # Django's own input limits (for example over DATA_UPLOAD_MAX_NUMBER_FIELDS query parameters).
        exc = ApiError("bad_request", "The request is malformed or over one of the server's limits.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif is_service_error(exc):
        exc = ServiceUnavailable(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, ApiError):
        body = error_body(exc.error_code, str(exc.detail))
    elif isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            fields = _fields(detail)
            non_field = fields.pop("non_field_errors", [])
            message = non_field[0] if non_field else "Some fields are invalid."
            body = error_body("validation_error", message, fields or None)
        else:
            body = error_body("validation_error", " ".join(_flatten(detail)))
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else _DEFAULT_CODES.get(response.status_code, "error")
        if code in {"invalid", "error"}:
            code = _DEFAULT_CODES.get(response.status_code, "error")
        body = error_body(code, " ".join(_flatten(exc.detail)))
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        retry_after = int(exc.wait + 0.999)
    if retry_after is not None:
        body["retry_after"] = retry_after
        response["Retry-After"] = str(retry_after)
    response.data = body
    return response


def json_error_response(code: str, message: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_code)


def service_unavailable_response(request, exc: BaseException) -> HttpResponse:
    """The 503 for a view outside DRF (pages, the admin): JSON under /api/, a short text page elsewhere."""
    unavailable = ServiceUnavailable(exc)
    retry_after = str(unavailable.retry_after)
    if request.path.startswith("/api/"):
        body = error_body(unavailable.default_code, str(unavailable.detail))
        response: HttpResponse = JsonResponse({**body, "retry_after": unavailable.retry_after}, status=503)
    else:
        response = HttpResponse(
            "The game server cannot reach its database or cache for the moment. Try again in a few seconds.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    response["Retry-After"] = retry_after
    return response


class ServiceUnavailableMiddleware:
    """Turns an outage of PostgreSQL or Redis raised by any view into a 503 with Retry-After instead of a 500 (DRF
    views already answer it through exception_handler above)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc: Exception) -> HttpResponse | None:
        return service_unavailable_response(request, exc) if is_service_error(exc) else None


class ErrorSerializer(serializers.Serializer):
    """The error shape, for the OpenAPI schema."""

    error = serializers.CharField(help_text="Stable snake_case code to switch on.")
    message = serializers.CharField(help_text="Readable text.")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)
    retry_after = serializers.IntegerField(required=False, help_text="Seconds to wait, on 429 and 503.")


def documented_error(description: str) -> OpenApiResponse:
    """An error response for @extend_schema: the shape above, with the codes that endpoint can answer."""
    return OpenApiResponse(ErrorSerializer, description=description)


# For paginated lists (gameserver/pagination.py).
INVALID_PAGINATION = "invalid_pagination: limit or offset is not a whole number in its range"
