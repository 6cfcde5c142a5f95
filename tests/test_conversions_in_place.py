"""The hot-path conversions compute what protobuf's own helpers would, without them:
responses are written in place with timestamps and durations in integer arithmetic
(server/services/to_proto.py), and Struct requests are read without json_format's
MessageToDict (server/services/from_proto.py). Every sub-message the old constructors
set stays present even when empty: clients may test HasField."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from flowrun.server.domain.flow_runs import FlowRun
from flowrun.server.domain.states import State, StateType
from flowrun.server.services import from_proto, to_proto
from flowrun.v1 import state_pb2

RUN_ID = "0b6f1c9e-4f1d-4c39-9a7e-9d3f2f0c1a11"
FLOW_ID = "7d0f5a57-8f6d-4a53-a2a1-6d2c5c8f7e10"

offsets = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes))),
)
# A day away from datetime's limits, so that every offset stays inside them in UTC.
datetimes = st.builds(
    lambda moment, zone: moment.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),  # noqa: DTZ001
    offsets,
)


@given(datetimes)
def test_a_timestamp_is_what_from_datetime_makes(moment):
    expected = Timestamp()
    expected.FromDatetime(moment)
    assert to_proto.timestamp(moment) == expected


@given(st.one_of(st.timedeltas(), st.floats(min_value=-1e10, max_value=1e10, allow_nan=False)))
def test_a_duration_is_what_from_timedelta_makes(value):
    expected = Duration()
    expected.FromTimedelta(value if isinstance(value, timedelta) else timedelta(seconds=value))
    assert to_proto.duration(value) == expected


scalars = st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
json_values = st.recursive(
    scalars | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_a_struct_reads_as_message_to_dict_reads_it(value):
    message = Struct()
    message.update(value)
    converted = from_proto.struct_value(message)
    assert converted == MessageToDict(message)
    assert repr(converted) == repr(MessageToDict(message))  # the same types too: floats stay floats


def test_a_proposals_data_reads_as_message_to_dict_reads_it():
    proposal = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
    proposal.data.struct_value.update({"result": [1, None, "x"], "nested": {}})
    now = datetime.now(UTC)
    state = from_proto.proposed_state(proposal, "state", now, from_proto.Violations())
    assert state is not None and state.data == MessageToDict(proposal.data)


def test_an_empty_runs_sub_messages_are_still_present():
    now = datetime.now(UTC)
    run = FlowRun(id=RUN_ID, created=now, updated=now, flow_id=FLOW_ID, name="quiet-fox")
    run.state = State(type=StateType.PENDING, name="Pending", timestamp=now)
    message = to_proto.flow_run(run, now)
    for name in (
        "created",
        "updated",
        "parameters",
        "context",
        "labels",
        "empirical_policy",
        "total_run_time",
        "estimated_run_time",
        "estimated_start_time_delta",
        "state",
    ):
        assert message.HasField(name), name
    assert message.state.HasField("state_details") and message.state.HasField("timestamp")
    for name in ("job_variables", "created_by", "heartbeat_timeout", "start_time"):
        assert not message.HasField(name), name
    run.job_variables = {}
    assert to_proto.flow_run(run, now).HasField("job_variables")  # {} is not None
