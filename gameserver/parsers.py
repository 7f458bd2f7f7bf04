"""The API's JSON parser: orjson, which refuses nesting deeper than 1024 levels with a parse error (the standard
library's parser raises RecursionError instead, which DRF lets through as a 500), reading at most MAX_REQUEST_BYTES.

It imports nothing of ours: DRF loads it while gameserver/api_errors.py is being imported."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """application/json, UTF-8 (RFC 8259). Errors: 400 parse_error (including too deep nesting), 413 request_too_large."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.MAX_REQUEST_BYTES
        # The server already refused longer bodies; reading one byte past the limit keeps that true here too.
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise RequestDataTooBig(f"The request body is over {limit} bytes.")  # 413 (gameserver/api_errors.py)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
