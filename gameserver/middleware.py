"""Refuse over-size API bodies up front, with the API's JSON error, before anything reads them."""

from __future__ import annotations

from django.conf import settings

from gameserver.api_errors import json_error_response


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request.path.startswith("/api/") and (not length.isdigit() or int(length) > limit):
            if not length.isdigit():
                return json_error_response("bad_request", "Content-Length is not a number.", 400)
            return json_error_response("request_too_large", f"The request body is over {limit} bytes.", 413)
        return self.get_response(request)
