"""The shared reader's fan-out (server/watch/tail.py): streams whose filter is the same
object evaluate it once per event; streams with other filters get their own answer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flowrun.server.repositories.flow_run_events import Position
from flowrun.server.watch.tail import LiveStream


class Counting:
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.calls = 0

    def matches(self, event: Any) -> bool:
        self.calls += 1
        return self.answer


def event(sequence: int) -> Any:
    return SimpleNamespace(sequence=sequence, xid=None)


def test_streams_with_one_filter_evaluate_it_once_per_event():
    shared = Counting(True)
    streams = [LiveStream(shared.matches, Position(after=0), limit=10) for _ in range(5)]
    for sequence in (1, 2, 3):
        matched: dict[int, bool] = {}
        for stream in streams:
            stream.offer(event(sequence), Position(after=sequence), matched)
    assert shared.calls == 3
    assert all([sent.position.after for sent in stream.items] == [1, 2, 3] for stream in streams)


def test_streams_with_other_filters_get_their_own_answer():
    yes, no = Counting(True), Counting(False)
    taking, refusing = LiveStream(yes.matches, Position(), limit=10), LiveStream(no.matches, Position(), limit=10)
    matched: dict[int, bool] = {}
    for stream in (refusing, taking, refusing):
        stream.offer(event(1), Position(after=1), matched)
    assert (yes.calls, no.calls) == (1, 1)
    assert [sent.position.after for sent in taking.items] == [1]
    assert not refusing.items


def test_an_event_already_sent_is_not_offered_nor_evaluated():
    counting = Counting(True)
    stream = LiveStream(counting.matches, Position(after=5), limit=10)
    stream.offer(event(5), Position(after=5), {})
    assert not stream.items and counting.calls == 0
