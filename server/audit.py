"""The audit trail: one JSON line per call that changes data, on the logger `flowrun.audit`.

Every call to a method above `reader` in server/roles.py (creates, updates, state
changes, lease renewals, deletes, deployments, pools and queues) is recorded once it
ends, whether authentication is on or not, including calls refused with
PERMISSION_DENIED; reads are not. A line holds:

    time        when the call arrived (UTC, ISO 8601)
    caller      token name, certificate subject, or "anonymous" when authentication is off
    via         token, certificate or anonymous
    role        the caller's role
    peer        the caller's address as gRPC reports it (ipv4:10.0.0.7:51234)
    method      full gRPC method name
    ids         what the request names: fields `*_id`, `*_ids`, `name`, `*_name`, and the
                `id` of a resource it carries (UpdateFlow's flow -> flow_id)
    result_ids  ids of the resources in the response (a create's new id, a new state's id)
    force       true on forced SetFlowRunState / SetTaskRunState
    code        the gRPC status code name: OK, NOT_FOUND, PERMISSION_DENIED, CANCELLED...

The logger's level is INFO whatever FLOWRUN_LOG_LEVEL says, so audit lines are never
filtered out with the rest of the INFO logs; route them elsewhere with a handler on
`flowrun.audit` (logging config) if they must be kept apart. Calls that fail
authentication are not audited (anyone could flood the trail); see the `flowrun.auth`
logger at DEBUG."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

log = logging.getLogger("flowrun.audit")
log.setLevel(logging.INFO)

MAX_IDS_PER_FIELD = 100
MAX_TEXT = 200


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 3] + "..."


def _is_identifier(name: str) -> bool:
    return name == "name" or name.endswith(("_id", "_name"))


def touched_ids(message: object) -> dict[str, object]:
    """The identifying fields of a request (see the module docstring), set ones only."""
    if not isinstance(message, Message):
        return {}
    ids: dict[str, object] = {}
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                if field.name.endswith("_ids"):
                    ids[field.name] = [_text(item) for item in value[:MAX_IDS_PER_FIELD]]
                    if len(value) > MAX_IDS_PER_FIELD:
                        ids[field.name + "_omitted"] = len(value) - MAX_IDS_PER_FIELD
            elif _is_identifier(field.name):
                ids[field.name] = _text(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
            resource_id = _resource_id(value)
            if resource_id:
                ids[f"{field.name}_id"] = resource_id
    return ids


def result_ids(response: object) -> dict[str, str]:
    """`<field>_id` for each resource (a message with an `id`) in the response."""
    if not isinstance(response, Message):
        return {}
    ids = {}
    for field, value in response.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
            resource_id = _resource_id(value)
            if resource_id:
                ids[f"{field.name}_id"] = resource_id
    return ids


def _resource_id(message: Message) -> str:
    field = message.DESCRIPTOR.fields_by_name.get("id")
    if field is None or field.type != FieldDescriptor.TYPE_STRING:
        return ""
    return _text(getattr(message, "id"))  # noqa: B009 - found through the descriptor; Message has no static id


def record(
    *,
    started: datetime,
    caller: str,
    via: str,
    role: str,
    peer: str,
    method: str,
    request: object,
    response: object,
    code: str,
) -> None:
    line: dict[str, object] = {
        "time": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "caller": _text(caller),
        "via": via,
        "role": role,
        "peer": peer,
        "method": method,
        "ids": touched_ids(request),
    }
    created = result_ids(response)
    if created:
        line["result_ids"] = created
    if getattr(request, "force", False) is True:
        line["force"] = True
    line["code"] = code
    log.info(json.dumps(line, ensure_ascii=False, sort_keys=False))
