"""JSON for socket messages, read and written once per message on the hot path of /ws:
orjson when it is installed (the `fast` extra; about 4 us less per message each way, measured
with bench/capacity.py), else the standard library. Both accept and produce the same
documents: what orjson refuses to read (NaN, Infinity, lone surrogates, nesting past its
depth limit) goes to the standard parser, which decides as before, and what it refuses to
write (keys that are not strings, integers past 64 bits) to the standard writer. Integers
past 64 bits are read by orjson as floats; no message field takes one either way."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # the standard library alone
    orjson = None  # type: ignore[assignment]  # the optional codec is absent

NAME = "orjson" if orjson is not None else "json"

if orjson is not None:
    _orjson_loads, _orjson_dumps = orjson.loads, orjson.dumps
    _DecodeError = orjson.JSONDecodeError

    def loads(text: str | bytes) -> Any:
        try:
            return _orjson_loads(text)
        except _DecodeError:
            return json.loads(text)

    def dumps(obj: Any) -> str:
        try:
            return _orjson_dumps(obj).decode()
        except TypeError:  # orjson.JSONEncodeError
            return json.dumps(obj)
else:
    loads = json.loads

    def dumps(obj: Any) -> str:
        return json.dumps(obj)
