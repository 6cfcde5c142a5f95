"""The write size rule: a write whose stored result could not be sent back whole is
refused before anything is written. Each write request must hold at most
Settings.write_max_bytes (its ByteSize(): one call on an already parsed message, no
encoding), and an updated flow run without its state at most
Settings.run_without_state_max_bytes; server/config.py says why that keeps every Get
response, List page row and watch snapshot within the response limit."""

from __future__ import annotations

from google.protobuf.message import Message

from flowrun.server.errors import InvalidArgument

_WELL_KNOWN = "google.protobuf."


class WriteTooLarge(InvalidArgument):
    """INVALID_ARGUMENT naming the largest field, with the limit and the size in the
    ErrorInfo metadata (max_bytes, request_bytes), so a client can tell what to shrink."""

    def __init__(self, field: str, description: str, size: int, limit: int) -> None:
        super().__init__([(field, description)])
        self.metadata = {"max_bytes": str(limit), "request_bytes": str(size)}


def check_write_size(request: Message, limit: int) -> None:
    """Raises WriteTooLarge when `request` holds more than `limit` bytes."""
    size = request.ByteSize()
    if size > limit:
        field, field_size = largest_field(request)
        raise WriteTooLarge(
            field or "(request)",
            f"the request is {size} bytes, over the {limit}-byte limit of a write "
            f"(this field holds {field_size} of them): a result that large could not be sent back",
            size,
            limit,
        )


def check_result_size(field: str, message: Message, limit: int, what: str) -> None:
    """Raises WriteTooLarge, naming `field` (the resource the request writes), when the
    result a write would store (`message`, as it would be returned, less what other writes
    bound) holds more than `limit` bytes."""
    size = message.ByteSize()
    if size > limit:
        biggest, field_size = largest_field(message)
        raise WriteTooLarge(
            field,
            f"{what} would be {size} bytes, over its {limit}-byte limit "
            f"(its largest field, {biggest}, would hold {field_size}): it could not be sent back",
            size,
            limit,
        )


def largest_field(message: Message) -> tuple[str, int]:
    """The path of the largest field (down through plain messages, stopping at
    well-known types such as Struct) and its size: only asked once a write is refused."""
    path: list[str] = []
    size = message.ByteSize()
    while fields := message.ListFields():
        size, field, value = max(((_size(value), field, value) for field, value in fields), key=lambda item: item[0])
        path.append(field.name)
        kind = field.message_type
        if kind is None or field.is_repeated or kind.full_name.startswith(_WELL_KNOWN):
            break
        message = value
    return ".".join(path), size


def _size(value) -> int:
    if isinstance(value, Message):
        return value.ByteSize()
    if isinstance(value, (str, bytes)):
        return len(value.encode() if isinstance(value, str) else value)
    if hasattr(value, "keys"):  # a map
        return sum(_size(key) + _size(value[key]) for key in value)
    try:
        return sum(_size(item) for item in value)  # a repeated field
    except TypeError:
        return 8  # a number or an enum
