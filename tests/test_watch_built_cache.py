"""The watch's cache of encoded events is bounded by bytes as well as by entries: it kept
the last 4,096 encoded events whatever their size (an event may take up to 4 MiB, so
~16 GiB at worst) for the process's life; an attacker grew a server from 241 to 1,117 MiB
with 240 events of 3.8 MB."""

from __future__ import annotations

from types import SimpleNamespace

from flowrun.server.config import Settings
from flowrun.server.repositories.flow_run_events import Position
from flowrun.server.services.watch import (
    BUILT_EVENT_MAX_BYTES,
    BUILT_EVENTS_KEPT,
    BUILT_EVENTS_MAX_BYTES,
    EncodedEventCache,
    Watcher,
)

MIB = 1024 * 1024


def key(sequence: int) -> tuple[int, Position]:
    return sequence, Position(after=sequence)


def test_large_events_stay_within_the_byte_bound():
    cache = EncodedEventCache()
    event = b"x" * (BUILT_EVENT_MAX_BYTES - 1)
    for sequence in range(200):
        cache.put(key(sequence), event)
        assert cache.bytes <= BUILT_EVENTS_MAX_BYTES
    assert cache.bytes == len(cache) * len(event)
    assert len(cache) == BUILT_EVENTS_MAX_BYTES // len(event)
    # The newest are kept, the oldest went first.
    assert cache.get(key(199)) == event and cache.get(key(0)) is None


def test_an_event_over_the_entry_bound_is_not_cached_and_evicts_nothing():
    cache = EncodedEventCache()
    small = b"s" * 1_000
    for sequence in range(10):
        cache.put(key(sequence), small)
    cache.put(key(10), b"x" * (BUILT_EVENT_MAX_BYTES + 1))
    assert cache.get(key(10)) is None
    assert all(cache.get(key(sequence)) == small for sequence in range(10))
    assert cache.bytes == 10_000


def test_small_events_keep_the_entry_count_and_the_hit_rate():
    cache = EncodedEventCache()
    small = b"s" * 2_000  # a usual event: a few KB
    for sequence in range(BUILT_EVENTS_KEPT + 100):
        cache.put(key(sequence), small)
    assert len(cache) == BUILT_EVENTS_KEPT
    assert cache.bytes == BUILT_EVENTS_KEPT * len(small) <= BUILT_EVENTS_MAX_BYTES
    hits = sum(cache.get(key(sequence)) is not None for sequence in range(100, BUILT_EVENTS_KEPT + 100))
    assert hits == BUILT_EVENTS_KEPT


def test_the_bounds_are_documented_figures():
    assert BUILT_EVENTS_MAX_BYTES == 64 * MIB
    assert BUILT_EVENT_MAX_BYTES == 2 * MIB


class FakeEvent:
    """What Watcher.encoded reads of an event: its sequence."""

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence


class FakeMessage:
    """A built event of a chosen encoded size."""

    def __init__(self, size: int) -> None:
        self.size = size

    def SerializeToString(self) -> bytes:
        return b"z" * self.size


def test_the_watcher_caches_what_it_encodes_within_the_byte_bound(monkeypatch):
    hub = SimpleNamespace(tail=None, on_close=lambda callback: None)  # the watcher's tail registers with it
    watcher = Watcher(None, Settings(database_url="sqlite+aiosqlite:///unused.db"), hub)  # type: ignore[arg-type]
    built: list[int] = []

    def build(event, position):
        built.append(event.sequence)
        return FakeMessage(MIB + MIB // 2)  # 1.5 MiB: under the event budget and the entry bound

    monkeypatch.setattr(watcher, "_build", build)
    for sequence in range(100):  # 150 MiB of events
        watcher.encoded(FakeEvent(sequence), Position(after=sequence))  # type: ignore[arg-type]
    assert watcher.cached_bytes <= BUILT_EVENTS_MAX_BYTES
    # The newest are served from the cache: not built again.
    watcher.encoded(FakeEvent(99), Position(after=99))  # type: ignore[arg-type]
    assert built == list(range(100))
