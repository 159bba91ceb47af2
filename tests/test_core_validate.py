"""Input parsing shared by handlers (core/validate.py), alone: the Idempotency-Key header and
true/false query flags."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from meterchat.core import validate
from meterchat.core.errors import ApiError


def code_of(fn, *args) -> str | None:
    try:
        fn(*args)
    except ApiError as exc:
        return exc.code
    return None


@pytest.mark.parametrize(("key", "code"), [
    (None, "idempotency_key_required"), ("  ", "idempotency_key_required"),
    ("x" * 201, "invalid_idempotency_key"), ("tab\there", "invalid_idempotency_key"),
    ("clé", "invalid_idempotency_key"), ("x" * 200, None), ("7f0c 1", None),
])
def test_an_idempotency_key_is_required_and_printable_ascii(key, code):
    assert code_of(validate.idempotency_key, key, "tip") == code


def test_an_idempotency_key_is_trimmed():
    assert validate.idempotency_key(" 7f0c-1 ", "withdrawal") == "7f0c-1"


@pytest.mark.parametrize(("query", "flag"), [
    ("", None), ("?online=", None), ("?online=true", True), ("?online=YES", True),
    ("?online=1", True), ("?online=false", False), ("?online=No", False), ("?online=0", False),
])
def test_query_flags(query, flag):
    assert validate.query_flag(make_mocked_request("GET", "/x" + query), "online") is flag


def test_a_query_flag_that_is_neither_is_invalid():
    request = make_mocked_request("GET", "/x?online=maybe")
    assert code_of(validate.query_flag, request, "online") == "invalid_value"
