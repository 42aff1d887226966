"""Decode an OTLP/HTTP trace export body into an `ExportTraceServiceRequest`.

OTLP/HTTP carries the same message two ways: binary protobuf (`application/x-protobuf`) and OTLP/JSON
(`application/json`), either one optionally compressed (`Content-Encoding: gzip` or `deflate`, the two
codings the reference exporters send). OTLP/JSON is *almost* proto3 JSON, with one trap: trace and span
ids are hex strings, where proto3 JSON would write `bytes` fields as base64. `json_format` only knows
base64, so ids are rewritten from hex to base64 before parsing; feeding hex straight to it would either
fail or, worse, silently decode a 32-digit hex id into 24 wrong bytes.

Everything malformed raises `OtlpDecodeError` carrying a human message and the HTTP status the route
should answer with (400, or 413/415 for the subclasses). Nothing here touches a database or the network.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Some clients (and the OTLP spec's own examples) say `application/protobuf`; accept it as a synonym.
_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}

# Field names (lowerCamelCase as OTLP/JSON requires, and the original names json_format also accepts)
# that hold trace/span ids, with the id's length in bytes. They only occur in Span and Span.Link.
_ID_FIELDS = {
    "traceId": 16,
    "trace_id": 16,
    "spanId": 8,
    "span_id": 8,
    "parentSpanId": 8,
    "parent_span_id": 8,
}

# Nesting deeper than this is refused before json_format walks it (OTLP itself nests a handful of levels;
# only AnyValue arrays/kvlists go deeper, and protobuf's own parser stops at 100 too).
_MAX_JSON_DEPTH = 100


class OtlpDecodeError(ValueError):
    """The body is not a valid OTLP trace export. `str(error)` is meant for the client."""

    http_status = 400


class UnsupportedMediaType(OtlpDecodeError):
    """Content-Type or Content-Encoding that this collector does not speak."""

    http_status = 415


class PayloadTooLarge(OtlpDecodeError):
    """The body, before or after decompression, is over the configured byte limit."""

    http_status = 413


def media_type(content_type: str | None) -> str | None:
    """`application/json; charset=utf-8` -> `application/json`; None when the type is not OTLP's."""
    if not content_type:
        return None
    bare = content_type.split(";", 1)[0].strip().lower()
    return _MEDIA_TYPES.get(bare)


def decode_export_request(
    body: bytes, content_type: str | None, content_encoding: str | None, *, max_bytes: int
) -> ExportTraceServiceRequest:
    """Decompress (size-capped) and parse one OTLP/HTTP trace export body.

    `max_bytes` bounds both the body as received and its decompressed size, so a small gzip "bomb"
    is stopped after `max_bytes + 1` bytes of output instead of exhausting memory.
    """
    kind = media_type(content_type)
    if kind is None:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}; OTLP/HTTP traces must be sent as "
            f"{PROTOBUF} or {JSON}"
        )
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {max_bytes}")
    raw = decompress(body, content_encoding, max_bytes=max_bytes)
    return _parse_protobuf(raw) if kind == PROTOBUF else _parse_json(raw)


def decompress(body: bytes, content_encoding: str | None, *, max_bytes: int) -> bytes:
    """Undo `Content-Encoding` (identity, gzip, deflate) without ever producing more than `max_bytes`."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding in ("gzip", "x-gzip"):
        return _inflate(body, wbits=16 + zlib.MAX_WBITS, name="gzip", max_bytes=max_bytes)
    if coding == "deflate":
        # RFC 9110 "deflate" is the zlib format, which is what the OTel exporters send; a few clients
        # send a raw deflate stream instead. The zlib header tells the two apart.
        wbits = zlib.MAX_WBITS if _has_zlib_header(body) else -zlib.MAX_WBITS
        return _inflate(body, wbits=wbits, name="deflate", max_bytes=max_bytes)
    raise UnsupportedMediaType(
        f"unsupported Content-Encoding {content_encoding!r}; use gzip, deflate or no compression"
    )


def _has_zlib_header(data: bytes) -> bool:
    """RFC 1950: compression method 8 and a header checksum divisible by 31."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _inflate(data: bytes, *, wbits: int, name: str, max_bytes: int) -> bytes:
    out = bytearray()
    remaining = data
    # A gzip body may be several concatenated members (RFC 1952 §2.2); zlib/deflate is one stream.
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            # Asking for one byte more than allowed is how we learn the output would be too large
            # without ever holding more than that in memory.
            out += inflater.decompress(remaining, max_bytes - len(out) + 1)
        except zlib.error as exc:
            raise OtlpDecodeError(
                f"Content-Encoding is {name} but the body is not valid {name} data ({exc})"
            ) from None
        if len(out) > max_bytes:
            raise PayloadTooLarge(
                f"request body decompresses to more than {max_bytes} bytes; the limit is {max_bytes}"
            )
        if not inflater.eof:
            raise OtlpDecodeError(
                f"{name} body is truncated: the compressed stream ends before its end marker"
            )
        remaining = inflater.unused_data
        if not remaining:
            return bytes(out)
        if name != "gzip":
            raise OtlpDecodeError(f"{len(remaining)} unexpected bytes after the end of the {name} stream")


def _parse_protobuf(raw: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(raw)
    except DecodeError as exc:
        raise OtlpDecodeError(f"body is not a valid protobuf ExportTraceServiceRequest ({exc})") from None
    except Exception as exc:  # the C parser can raise other types (e.g. on recursion limits); never leak them
        raise OtlpDecodeError(f"body is not a valid protobuf ExportTraceServiceRequest ({exc})") from None
    return request


def _parse_json(raw: bytes) -> ExportTraceServiceRequest:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OtlpDecodeError(f"JSON body is not valid UTF-8 (byte {exc.start})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OtlpDecodeError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise OtlpDecodeError("JSON body is nested too deeply") from None
    if not isinstance(document, dict):
        raise OtlpDecodeError(
            f'JSON body must be an object like {{"resourceSpans": [...]}}, not {type(document).__name__}'
        )
    _hex_ids_to_base64(document)
    request = ExportTraceServiceRequest()
    try:
        # OTLP/JSON receivers must ignore unknown fields (forward compatibility with newer senders).
        json_format.ParseDict(
            document, request, ignore_unknown_fields=True, max_recursion_depth=_MAX_JSON_DEPTH
        )
    except json_format.ParseError as exc:
        raise OtlpDecodeError(f"JSON body is not a valid OTLP ExportTraceServiceRequest: {exc}") from None
    except Exception as exc:  # json_format raises assorted types on odd input (TypeError, RecursionError...)
        raise OtlpDecodeError(f"JSON body is not a valid OTLP ExportTraceServiceRequest: {exc}") from None
    return request


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite OTLP/JSON's hex trace/span ids in place to the base64 json_format expects.

    Walks iteratively (no recursion) and refuses nesting beyond `_MAX_JSON_DEPTH`.
    """
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > _MAX_JSON_DEPTH:
            raise OtlpDecodeError(
                f"JSON body is nested more than {_MAX_JSON_DEPTH} levels deep (at {path or '$'})"
            )
        if isinstance(node, dict):
            for key, value in node.items():
                child_path = f"{path}.{key}" if path else key
                if key in _ID_FIELDS and value is not None:
                    node[key] = _id_to_base64(value, _ID_FIELDS[key], child_path)
                elif isinstance(value, dict | list):
                    stack.append((value, child_path, depth + 1))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, dict | list):
                    stack.append((value, f"{path}[{index}]", depth + 1))


def _id_to_base64(value: Any, size: int, path: str) -> str:
    what = "trace id" if size == 16 else "span id"
    if not isinstance(value, str):
        raise OtlpDecodeError(
            f"{path}: a {what} must be a string of {2 * size} hex digits, not {type(value).__name__}"
        )
    if value == "":
        return ""  # an absent id (e.g. a root span's parentSpanId) is encoded as the empty string
    if len(value) == 2 * size:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode("ascii")
        except ValueError:
            pass
    # Tolerate proto3-JSON producers that base64-encode ids; the lengths cannot be confused with hex
    # (16 bytes are 24 base64 characters, 8 bytes are 12).
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) == size:
        return value
    raise OtlpDecodeError(f"{path}: {value!r} is not a valid {what} ({2 * size} hex digits expected)")
