"""One-line answers to bad input.

FastAPI answers a request that fails validation with the list of every error, each with the
rejected input echoed back (a new user's too-short password included, into whatever logs the
client or a proxy keeps). Every other refusal of the API is one line naming the field and
what is allowed (``grid_id must match the URL``, ``device_ids: not devices of site …``), so
validation errors are answered the same way: ``{"detail": "password: String should have at
least 10 characters"}``, without the input. The console renders the same 422 as its error
page (`gateway.console.app`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_ERRORS = 5
"""Errors named in one answer; the rest are counted."""
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def _field(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in _SOURCES and len(parts) > 1:
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _one(error: Mapping[str, Any]) -> str:
    if error.get("type") == "json_invalid":  # its loc is the character position
        return "body: not valid JSON"
    message = " ".join(str(error.get("msg", "invalid")).split())
    return f"{_field(error.get('loc', ()))}: {message}"


def one_line(errors: Sequence[Mapping[str, Any]]) -> str:
    """`errors` (pydantic's, as FastAPI hands them over) as ``field: what is allowed``,
    joined by ``; `` on one line; never the rejected input."""
    shown = [_one(e) for e in errors[:MAX_ERRORS]]
    more = len(errors) - MAX_ERRORS
    if more > 0:
        shown.append(f"and {more} more")
    return "; ".join(shown) or "the request is invalid"
