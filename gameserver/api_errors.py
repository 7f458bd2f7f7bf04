"""One error shape for the whole API: {"error": code, "message": text, "fields": {name: [text, ...]}}.

Clients switch on "error" (stable snake_case codes); "message" is for people; "fields" appears on validation errors.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
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


class ErrorSerializer(serializers.Serializer):
    """The error shape, for the OpenAPI schema."""

    error = serializers.CharField(help_text="Stable snake_case code to switch on.")
    message = serializers.CharField(help_text="Readable text.")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)
    retry_after = serializers.IntegerField(required=False, help_text="Seconds to wait, on 429.")


def documented_error(description: str) -> OpenApiResponse:
    """An error response for @extend_schema: the shape above, with the codes that endpoint can answer."""
    return OpenApiResponse(ErrorSerializer, description=description)


# For paginated lists (gameserver/pagination.py).
INVALID_PAGINATION = "invalid_pagination: limit or offset is not a whole number in its range"
