"""Limit/offset pagination with strict bounds: a limit or offset that is not a whole number in range is a 400
invalid_pagination, never a silent default, a clamp, or a number too large for the database's 64-bit integers."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter
from rest_framework import pagination, status
from rest_framework.settings import api_settings

from gameserver.api_errors import ApiError


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """?limit= 1..PAGINATION_MAX_LIMIT (default PAGE_SIZE) and ?offset= 0..PAGINATION_MAX_OFFSET (default 0).
    An empty value counts as absent (an HTML form's empty field)."""

    default_limit = api_settings.PAGE_SIZE

    @property
    def max_limit(self) -> int:
        return settings.PAGINATION_MAX_LIMIT

    @property
    def max_offset(self) -> int:
        return settings.PAGINATION_MAX_OFFSET

    def get_limit(self, request) -> int:
        return _bounded(request.query_params.get(self.limit_query_param), self.limit_query_param,
                        default=self.default_limit, minimum=1, maximum=self.max_limit)

    def get_offset(self, request) -> int:
        return _bounded(request.query_params.get(self.offset_query_param), self.offset_query_param,
                        default=0, minimum=0, maximum=self.max_offset)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, self.max_offset)}
        for parameter in parameters:
            if parameter["name"] in bounds:
                low, high = bounds[parameter["name"]]
                parameter["schema"].update(minimum=low, maximum=high)
                parameter["description"] += f" A whole number from {low} to {high}; anything else is 400 invalid_pagination."
        return parameters


def _bounded(raw: str | None, name: str, *, default: int, minimum: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    # Digits only, and few of them, before int(): no "1e20", "-1", "+1", " 1" or 10,000-digit numbers.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(maximum)) or not minimum <= int(raw) <= maximum:
        raise ApiError(
            "invalid_pagination",
            f"{name} must be a whole number from {minimum} to {maximum}.",
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    return int(raw)


def _parameters() -> list[OpenApiParameter]:
    limit = f"Results per page, a whole number from 1 to {settings.PAGINATION_MAX_LIMIT} (default {api_settings.PAGE_SIZE})."
    offset = f"Results to skip, a whole number from 0 to {settings.PAGINATION_MAX_OFFSET} (default 0)."
    return [OpenApiParameter("limit", int, description=limit), OpenApiParameter("offset", int, description=offset)]


# For @extend_schema of APIViews that paginate by hand (generic list views get these from the pagination class).
PAGINATION_PARAMETERS = _parameters()
