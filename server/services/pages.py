"""The paging fields of a List request plus the server's byte budget for one page.

A page of 200 runs with large parameters could outgrow the gRPC message limit and fail
RESOURCE_EXHAUSTED after the whole response was built; with the budget the repository
cuts the page early instead, and its next_page_token continues after the last item
returned (server/repositories/paging.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from server.config import Settings
from server.domain.filters import PageRequest
from server.services import filters_from_proto


def page_request(request: Any, settings: Settings, **sizes: int) -> PageRequest:
    """filters_from_proto.page_request (`sizes`: default_size, max_size) with max_bytes."""
    return replace(filters_from_proto.page_request(request, **sizes), max_bytes=settings.page_max_bytes)
