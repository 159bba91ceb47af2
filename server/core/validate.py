"""Reading requests: malformed JSON is a 400, a wrong type or value a 422, each with a
message naming the field. Pure helpers over a parsed dict or a request's path and query.

Every number a client sends goes through one of these: ids (`path_id`, `body_id`) are 1-18
ASCII digits or a JSON integer in that range, never a float or a bool; integers in a body
(`integer`) and in a query (`query_int`) are bounded, at the most by what SQLite holds. So no
client number reaches the database as a wrong id or overflows it (a 500).

The one Idempotency-Key rule (`idempotency_key`), for tips and withdrawals alike: required;
surrounding whitespace is dropped; what is left is 1 to 200 printable ASCII characters
(space to tilde, U+0020..U+007E), so no control character, tab or non-ASCII letter reaches
a stored key."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from meterchat.core.errors import BadRequest, NotFound, Unprocessable

MAX_BODY_BYTES = 64 * 1024
# Ids are 1-18 digits: SQLite's INTEGER stops at 9.2e18.
MAX_ID = 10**18 - 1
# What an integer column holds; the bound of any integer without a tighter one.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_IDEMPOTENCY_KEY_CHARS = 200
# A request body: a parsed JSON object.
Body = dict[str, Any]


async def read_json(request: web.Request) -> Body:
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
    if b"\\u" in raw and not _is_unicode(body):
        # Valid JSON, but a lone surrogate escape ("\ud800") is no character: such text
        # could be neither hashed, stored nor sent on (a 500 anywhere it went).
        raise BadRequest("request body holds text that is not Unicode (a lone surrogate"
                         " escape such as \\ud800)", "malformed_json")
    return body


def _is_unicode(value: Any) -> bool:
    """Every string in a parsed JSON value (keys too) encodes as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def header_text(request: web.Request, name: str) -> str:
    """A header's value as text that can be stored, mailed and shown: a byte that is not
    UTF-8 (aiohttp hands it over as a lone surrogate, which SQLite and mail refuse) becomes
    U+FFFD."""
    value = request.headers.get(name, "")
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


_MISSING = object()


def _get(body: Body, name: str, required: bool, default: Any) -> Any:
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise Unprocessable(f"{name} is required", "missing_field")
        return default
    return value


def string(body: Body, name: str, *, required: bool = True, default: Any = None,
           max_len: int = 10_000) -> Any:
    value = _get(body, name, required, default)
    if value is default and not required:
        return value
    if not isinstance(value, str):
        raise Unprocessable(f"{name} must be a string", "invalid_type")
    if len(value) > max_len:
        raise Unprocessable(f"{name} is longer than {max_len} characters", "invalid_value")
    return value


def integer(body: Body, name: str, *, required: bool = True, default: Any = None,
            min: int | None = None, max: int | None = None) -> Any:
    """A JSON integer (never a float, even 10.0, nor a bool) within [min, max]; without
    bounds, within what SQLite holds."""
    value = _get(body, name, required, default)
    if value is default and not required:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unprocessable(f"{name} must be an integer", "invalid_type")
    lo = INT64_MIN if min is None else min
    hi = INT64_MAX if max is None else max
    if not lo <= value <= hi:
        raise Unprocessable(f"{name} must be between {lo} and {hi}", "invalid_value")
    return value


def boolean(body: Body, name: str, *, required: bool = True, default: Any = None) -> Any:
    value = _get(body, name, required, default)
    if value is default and not required:
        return value
    if not isinstance(value, bool):
        raise Unprocessable(f"{name} must be true or false", "invalid_type")
    return value


def string_list(body: Body, name: str, *, required: bool = False, default: Any = None,
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


def decimal_string(body: Body, name: str, *, required: bool = True) -> Any:
    """An amount given as a decimal string (or an integer); the caller converts it."""
    value = _get(body, name, required, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unprocessable(f'{name} must be a decimal string like "10.5"', "invalid_type")
    return str(value)


def _digits(text: str, max_len: int) -> bool:
    # str.isdigit() alone takes other scripts' digits ("\u0661"), which int() reads.
    return 0 < len(text) <= max_len and text.isascii() and text.isdigit()


def parse_id(value: Any) -> int | None:
    """An id from JSON or a URL: a string of 1-18 ASCII digits, or an int in 0..MAX_ID.
    None for anything else (floats, bools, signs, spaces, exponents, other scripts)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_ID else None
    if isinstance(value, str) and _digits(value, 18):
        return int(value)
    return None


def body_id(body: Body, name: str, what: str = "an id", *, required: bool = True) -> Any:
    """The id in a body field (e.g. seller_id): 422 `invalid_type` for a float, a bool or a
    container, `invalid_value` for a string or integer that is not an id."""
    value = _get(body, name, required, None)
    if value is None:
        return None
    found = parse_id(value)
    if found is None:
        code = "invalid_value" if isinstance(value, str | int) and not isinstance(value, bool) \
            else "invalid_type"
        raise Unprocessable(f'{name} must be {what}: a string of digits like "12"', code)
    return found


def path_id(request: web.Request, what: str, message: str | None = None) -> int:
    """The numeric {id} of a path. Anything but 1-18 ASCII digits names nothing: 404
    `<what>_not_found` (int() alone would take "+1", "1_0", other scripts' digits, and
    numbers too large for SQLite)."""
    found = parse_id(request.match_info["id"])
    if found is None:
        raise NotFound(message or f"no such {what}", f"{what}_not_found")
    return found


def query_flag(request: web.Request, name: str) -> bool | None:
    """A true/false query parameter (true, 1, yes / false, 0, no, any case); absent or empty
    gives None. Anything else is 422 `invalid_value`."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise Unprocessable(f"{name} must be true or false", "invalid_value")


def query_status(request: web.Request, allowed: tuple[str, ...]) -> str | None:
    """The `status` filter of a list: one of `allowed`; absent or empty gives None (every
    status). Anything else is 422 `invalid_status`."""
    status = request.query.get("status") or None
    if status is not None and status not in allowed:
        raise Unprocessable(f"status must be one of {', '.join(allowed)}", "invalid_status")
    return status


def query_int(request: web.Request, name: str, *, default: Any = None, min: int = 0,
              max: int = MAX_ID) -> Any:
    """A non-negative integer query parameter within [min, max], written in ASCII digits;
    absent or empty gives `default`. Anything else is 422 `invalid_value`."""
    text = request.query.get(name)
    if text is None or text == "":
        return default
    if not _digits(text, 18) or not min <= int(text) <= max:
        raise Unprocessable(f"{name} must be a whole number from {min} to {max}",
                            "invalid_value")
    return int(text)


def idempotency_key(value: str | None, purpose: str) -> str:
    """The Idempotency-Key header, stripped: 1 to 200 printable ASCII characters. 400
    `idempotency_key_required` when absent or blank (the message says `purpose`, e.g. "a new
    random value per tip"), 400 `invalid_idempotency_key` for anything else."""
    if value is None or not value.strip():
        raise BadRequest(f"send an Idempotency-Key header ({purpose})",
                         "idempotency_key_required")
    key = value.strip()
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not all(" " <= ch <= "~" for ch in key):
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable "
                         "ASCII characters", "invalid_idempotency_key")
    return key
