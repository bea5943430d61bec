"""AWS event-stream framing (``application/vnd.amazon.eventstream``), encode and decode.

Bedrock's ConverseStream answers with this binary framing, so the Bedrock provider decodes it and
the inbound Bedrock dialect encodes it for boto3. One message on the wire is::

    total length (u32) | headers length (u32) | prelude CRC32 (u32) | headers | payload | CRC32

all big-endian; the prelude CRC covers the first 8 bytes, the message CRC everything before it.
A header is ``name length (u8) | name | type (u8) | value``; Bedrock uses string headers
(type 7: ``u16 length | utf-8``) for ``:event-type``, ``:content-type``, ``:message-type`` and
``:exception-type``, but the decoder reads every header type so a real AWS stream never trips it.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass, field

from gearshift.errors import GearshiftError

PRELUDE_LEN = 12  # total length, headers length, prelude CRC
CRC_LEN = 4
MAX_MESSAGE_LEN = 16 * 1024 * 1024  # AWS caps messages far below this; guards a corrupt length

HeaderValue = bool | int | bytes | str | uuid.UUID

_BOOL_TRUE, _BOOL_FALSE, _BYTE, _SHORT, _INT, _LONG, _BYTES, _STRING, _TIMESTAMP, _UUID = range(10)


class EventStreamError(GearshiftError):
    """A frame could not be decoded: bad CRC, impossible length, unknown header type."""

    status = 502
    code = "eventstream_error"


@dataclass(slots=True)
class EventMessage:
    headers: dict[str, HeaderValue] = field(default_factory=dict)
    payload: bytes = b""

    def header(self, name: str) -> str:
        """A string header, or '' when absent (the three Bedrock headers are all strings)."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else ""

    @property
    def event_type(self) -> str:
        return self.header(":event-type")

    @property
    def message_type(self) -> str:
        return self.header(":message-type")


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode("utf-8")
    out = bytes([len(raw_name)]) + raw_name
    # bool before int: bool is an int subclass.
    if isinstance(value, bool):
        return out + bytes([_BOOL_TRUE if value else _BOOL_FALSE])
    if isinstance(value, int):
        return out + bytes([_LONG]) + struct.pack(">q", value)
    if isinstance(value, uuid.UUID):
        return out + bytes([_UUID]) + value.bytes
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    kind = _BYTES if isinstance(value, bytes) else _STRING
    return out + bytes([kind]) + struct.pack(">H", len(raw)) + raw


def encode_message(headers: dict[str, HeaderValue], payload: bytes) -> bytes:
    """One complete frame with both CRCs."""
    raw_headers = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = PRELUDE_LEN + len(raw_headers) + len(payload) + CRC_LEN
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def encode_event(event_type: str, payload: bytes) -> bytes:
    """A Bedrock stream event (``:message-type: event``) with a JSON payload."""
    return encode_message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        payload,
    )


def encode_exception(exception_type: str, payload: bytes) -> bytes:
    """A modelled error in the stream (``:message-type: exception``), as boto3 raises it."""
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        payload,
    )


def _decode_headers(raw: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos = 0
    end = len(raw)
    try:
        while pos < end:
            name_len = raw[pos]
            pos += 1
            name = raw[pos : pos + name_len].decode("utf-8")
            pos += name_len
            kind = raw[pos]
            pos += 1
            value: HeaderValue
            if kind == _BOOL_TRUE:
                value = True
            elif kind == _BOOL_FALSE:
                value = False
            elif kind == _BYTE:
                (value,) = struct.unpack_from(">b", raw, pos)
                pos += 1
            elif kind == _SHORT:
                (value,) = struct.unpack_from(">h", raw, pos)
                pos += 2
            elif kind == _INT:
                (value,) = struct.unpack_from(">i", raw, pos)
                pos += 4
            elif kind in (_LONG, _TIMESTAMP):
                (value,) = struct.unpack_from(">q", raw, pos)
                pos += 8
            elif kind in (_BYTES, _STRING):
                (length,) = struct.unpack_from(">H", raw, pos)
                pos += 2
                chunk = raw[pos : pos + length]
                if len(chunk) != length:
                    raise EventStreamError(f"event-stream header {name!r} is truncated")
                pos += length
                value = chunk.decode("utf-8") if kind == _STRING else bytes(chunk)
            elif kind == _UUID:
                value = uuid.UUID(bytes=bytes(raw[pos : pos + 16]))
                pos += 16
            else:
                raise EventStreamError(f"event-stream header {name!r} has unknown type {kind}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise EventStreamError(f"event-stream headers are malformed: {exc}") from None
    if pos != end:
        raise EventStreamError("event-stream headers overrun their declared length")
    return headers


class EventStreamDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, get back every complete message."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still buffered (non-zero at EOF means truncation)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[EventMessage]:
        self._buffer += data
        messages: list[EventMessage] = []
        while len(self._buffer) >= PRELUDE_LEN:
            total, headers_len, prelude_crc = struct.unpack_from(">III", self._buffer, 0)
            actual = zlib.crc32(memoryview(self._buffer)[:8])
            if actual != prelude_crc:
                raise EventStreamError(
                    f"event-stream prelude CRC mismatch (expected {prelude_crc:#010x}, "
                    f"computed {actual:#010x}): the stream is corrupt"
                )
            if total < PRELUDE_LEN + CRC_LEN + headers_len or total > MAX_MESSAGE_LEN:
                raise EventStreamError(f"event-stream message has impossible length {total}")
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", frame, total - CRC_LEN)
            actual = zlib.crc32(memoryview(frame)[: total - CRC_LEN])
            if actual != message_crc:
                raise EventStreamError(
                    f"event-stream message CRC mismatch (expected {message_crc:#010x}, "
                    f"computed {actual:#010x}): the stream is corrupt"
                )
            headers_end = PRELUDE_LEN + headers_len
            messages.append(
                EventMessage(
                    _decode_headers(frame[PRELUDE_LEN:headers_end]),
                    frame[headers_end : total - CRC_LEN],
                )
            )
        return messages


def decode_all(data: bytes) -> list[EventMessage]:
    """Decode a complete buffer; trailing partial bytes are an error."""
    decoder = EventStreamDecoder()
    messages = decoder.feed(data)
    if decoder.pending:
        raise EventStreamError(
            f"event-stream ends with {decoder.pending} bytes of a partial message"
        )
    return messages
