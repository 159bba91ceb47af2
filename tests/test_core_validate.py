"""Input parsing shared by handlers (core/validate.py), alone: the one Idempotency-Key rule,
shared by tips and withdrawals (required, surrounding whitespace dropped, then 1 to 200
printable ASCII characters, U+0020..U+007E), and true/false query flags."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from meterchat.core import validate
from meterchat.core.errors import ApiError


def code_of(value: str | None) -> str:
    with pytest.raises(ApiError) as info:
        validate.idempotency_key(value, "a new random value per try")
    assert info.value.status == 400
    return info.value.code


@pytest.mark.parametrize("key,code", [
    (None, "idempotency_key_required"), ("", "idempotency_key_required"),
    ("  ", "idempotency_key_required"), ("\t\n", "idempotency_key_required"),
    ("x" * 201, "invalid_idempotency_key"), ("tab\there", "invalid_idempotency_key"),
    ("del\x7f", "invalid_idempotency_key"), ("nul\x00", "invalid_idempotency_key"),
    ("clé", "invalid_idempotency_key"), ("日本", "invalid_idempotency_key"),
    ("nbsp\u00a0in", "invalid_idempotency_key"),
])
def test_absent_blank_long_or_non_printable_ascii_keys_are_refused(key, code):
    assert code_of(key) == code


def test_a_key_is_stripped_and_may_be_1_to_200_printable_ascii_characters():
    assert validate.idempotency_key(" 7f0c-1 ", "x") == "7f0c-1"
    assert validate.idempotency_key("a", "x") == "a"
    assert validate.idempotency_key("x" * 200, "x") == "x" * 200
    # The length counts after stripping: spaces around a 200-character key do not count.
    assert validate.idempotency_key("  " + "x" * 200 + "  ", "x") == "x" * 200
    every = "".join(chr(c) for c in range(0x21, 0x7F))
    assert validate.idempotency_key(every, "x") == every
    assert validate.idempotency_key("a b", "x") == "a b"  # spaces inside are printable


def test_the_message_says_what_the_key_is_for():
    with pytest.raises(ApiError) as info:
        validate.idempotency_key(None, "any unique string per withdrawal")
    assert "any unique string per withdrawal" in info.value.message


@given(st.text(max_size=300))
def test_what_is_accepted_is_exactly_the_rule(text):
    key = text.strip()
    ok = 1 <= len(key) <= 200 and all(0x20 <= ord(ch) <= 0x7E for ch in key)
    try:
        got = validate.idempotency_key(text, "x")
    except ApiError:
        assert not ok
    else:
        assert ok and got == key


@pytest.mark.parametrize(("query", "flag"), [
    ("", None), ("?online=", None), ("?online=true", True), ("?online=YES", True),
    ("?online=1", True), ("?online=false", False), ("?online=No", False), ("?online=0", False),
])
def test_query_flags(query, flag):
    assert validate.query_flag(make_mocked_request("GET", "/x" + query), "online") is flag


def test_a_query_flag_that_is_neither_is_invalid():
    request = make_mocked_request("GET", "/x?online=maybe")
    with pytest.raises(ApiError) as info:
        validate.query_flag(request, "online")
    assert info.value.code == "invalid_value"


def test_a_status_filter_is_one_of_those_allowed_or_every_status():
    allowed = ("open", "closed")
    for query, status in (("", None), ("?status=", None), ("?status=open", "open")):
        request = make_mocked_request("GET", "/x" + query)
        assert validate.query_status(request, allowed) == status
    with pytest.raises(ApiError) as info:
        validate.query_status(make_mocked_request("GET", "/x?status=Open"), allowed)
    assert info.value.code == "invalid_status"
