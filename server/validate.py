"""Reading request bodies: malformed JSON is a 400, a wrong type or value a 422, each with a
message naming the field. Pure helpers over a parsed dict."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from server.errors import BadRequest, NotFound, Unprocessable

MAX_BODY_BYTES = 64 * 1024


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest("request body is too large", "body_too_large")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("request body is too large", "body_too_large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON", "malformed_json") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", "malformed_json")
    return body


_MISSING = object()


def _get(body: dict, name: str, required: bool, default: Any) -> Any:
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise Unprocessable(f"{name} is required", "missing_field")
        return default
    return value


def string(body: dict, name: str, *, required: bool = True, default: Any = None,
           max_len: int = 10_000) -> Any:
    value = _get(body, name, required, default)
    if value is default and not required:
        return value
    if not isinstance(value, str):
        raise Unprocessable(f"{name} must be a string", "invalid_type")
    if len(value) > max_len:
        raise Unprocessable(f"{name} is longer than {max_len} characters", "invalid_value")
    return value


def integer(body: dict, name: str, *, required: bool = True, default: Any = None,
            min: int | None = None, max: int | None = None) -> Any:
    value = _get(body, name, required, default)
    if value is default and not required:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unprocessable(f"{name} must be an integer", "invalid_type")
    if (min is not None and value < min) or (max is not None and value > max):
        raise Unprocessable(f"{name} must be between {min} and {max}", "invalid_value")
    return value


def boolean(body: dict, name: str, *, required: bool = True, default: Any = None) -> Any:
    value = _get(body, name, required, default)
    if value is default and not required:
        return value
    if not isinstance(value, bool):
        raise Unprocessable(f"{name} must be true or false", "invalid_type")
    return value


def string_list(body: dict, name: str, *, required: bool = False, default: Any = None,
                max_items: int = 20, max_len: int = 40) -> Any:
    value = _get(body, name, required, default)
    if value is default and not required:
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Unprocessable(f"{name} must be a list of strings", "invalid_type")
    if len(value) > max_items or any(len(v) > max_len for v in value):
        raise Unprocessable(
            f"{name} allows {max_items} items of {max_len} characters at most", "invalid_value"
        )
    return value


def decimal_string(body: dict, name: str, *, required: bool = True) -> Any:
    """An amount given as a decimal string (or an integer); the caller converts it."""
    value = _get(body, name, required, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unprocessable(f'{name} must be a decimal string like "10.5"', "invalid_type")
    return str(value)


def path_id(request: web.Request, what: str, message: str | None = None) -> int:
    """The numeric {id} of a path. Anything but 1-18 ASCII digits names nothing: 404
    `<what>_not_found` (int() alone would take "+1", "1_0", other scripts' digits, and
    numbers too large for SQLite)."""
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound(message or f"no such {what}", f"{what}_not_found")
    return int(text)
