"""Reading request bodies safely: size caps before and after decompression, and clear refusals."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from pydantic import BaseModel, ValidationError

from monitor.schemas import Limits

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds `max_bytes` (without buffering the rest)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body is {int(declared)} bytes; the limit is {max_bytes}",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE, f"request body exceeds the limit of {max_bytes} bytes"
            )
        chunks.append(chunk)
    body = b"".join(chunks)
    request.state.raw_body = body  # for the error handlers (monitor/api/errors.py); the stream is gone
    return body


def decode_content(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo `Content-Encoding: gzip|deflate`, refusing bodies that inflate past `max_bytes` (zip bombs)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"unsupported Content-Encoding {enc!r}; use gzip, deflate or none"
        )
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # 32: accept both gzip and zlib headers
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is not valid {enc}: {exc}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"decompressed body exceeds the limit of {max_bytes} bytes"
        )
    if not inflater.eof:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body is truncated {enc} data")
    return out


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def printable(text: str) -> str:
    """`text` with unpaired surrogates written as `\\udfff` escapes: an error that names a key the client sent must
    still encode as UTF-8 (a lone surrogate in a key used to turn the 422 into a 500)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def field_problems(errors: list[Any], limit: int = 20) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors as `{field, message, type}`, without echoing (possibly huge) input values."""
    detail = [
        {"field": printable(_loc(tuple(e["loc"])) or "body"), "message": printable(str(e["msg"])), "type": e["type"]}
        for e in errors[:limit]
    ]
    if len(errors) > limit:
        detail.append({"field": "body", "message": f"... and {len(errors) - limit} more errors", "type": "truncated"})
    return detail


def validation_detail(exc: ValidationError, limit: int = 20) -> list[dict[str, Any]]:
    return field_problems(exc.errors(include_input=False, include_url=False, include_context=False), limit)


INT64 = (-(2**63), 2**63 - 1)


def unstorable(value: Any) -> str | None:
    """Why the database cannot store this scalar (Postgres text, UTF-8, bigint), or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character (\\u0000), which cannot be stored"
        if any("\ud800" <= c <= "\udfff" for c in value):
            return "contains an unpaired UTF-16 surrogate, which is not valid Unicode and cannot be stored"
    elif isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        return "is outside the 64-bit integer range"
    return None


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(field, scalar) pairs of a JSON document, fields named like validation errors name them."""
    if isinstance(value, dict):
        for k, v in value.items():
            child = f"{path}.{k}" if path else str(k)
            yield child, k  # keys are stored too (JSON columns)
            yield from walk(v, child)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path or "body", value


def _unpaired_surrogate(raw: bytes) -> list[dict[str, Any]] | None:
    # Strict JSON parsing refuses `"\ud800"` with only a position; the lenient standard library parser reads
    # it, so the answer can name the field instead.
    try:
        doc = json.loads(raw)
        for field, value in walk(doc):
            reason = unstorable(value)
            if reason and "surrogate" in reason:
                return [{"field": printable(field), "message": reason, "type": "value_error"}]
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses: keep the parser's 422
        return None
    return None


def parse_batch(model: type[M], raw: bytes, limits: Limits) -> M:
    limits = replace(limits, may_contain_nul=b"\\u0000" in raw)
    try:
        return model.model_validate_json(raw, context={"limits": limits})
    except ValidationError as exc:
        detail = validation_detail(exc)
        if detail and detail[0]["type"] == "json_invalid" and b"\\u" in raw:
            detail = _unpaired_surrogate(raw) or detail
        too_many = any("per batch" in d["message"] for d in detail)
        code = status.HTTP_413_CONTENT_TOO_LARGE if too_many else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise HTTPException(code, detail) from None
