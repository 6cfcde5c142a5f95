"""The transport options that bound what a call can hold in the server
(bench/slow_readers.py measures the memory itself)."""

from __future__ import annotations

from flowrun.server.app import server_options
from flowrun.server.config import Settings


def test_responses_are_capped_below_the_request_limit_by_default():
    options = dict(server_options(Settings()))
    assert options["grpc.max_send_message_length"] == 4 * 1024 * 1024
    assert options["grpc.max_receive_message_length"] == 8 * 1024 * 1024
    assert "grpc.max_concurrent_streams" not in options
    assert Settings().page_max_bytes == 4 * 1024 * 1024 - 64 * 1024


def test_the_smaller_limit_wins_and_streams_per_connection_is_opt_in():
    settings = Settings(
        max_message_bytes=1024 * 1024, max_response_bytes=4 * 1024 * 1024, max_streams_per_connection=64
    )
    options = dict(server_options(settings))
    assert options["grpc.max_send_message_length"] == 1024 * 1024
    assert options["grpc.max_concurrent_streams"] == 64
    assert settings.page_max_bytes == 1024 * 1024 - 64 * 1024
