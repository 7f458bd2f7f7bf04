"""404 and 500 pages that answer API paths in the API's JSON error shape."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from gameserver.api_errors import json_error_response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error_response("not_found", "No such endpoint.", 404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error_response("server_error", "The server failed; the error has been logged.", 500)
    return defaults.server_error(request)
