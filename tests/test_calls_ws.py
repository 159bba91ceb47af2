"""calls/ws.py's parsing of socket messages, alone: ids and media counters that the
database can hold, and nothing else (the socket itself: test_calls_api.py, test_ws_*.py)."""

from __future__ import annotations

import pytest

from meterchat.calls.ws import MAX_COUNTER, WsError, ws_call_id, ws_counter


@pytest.mark.parametrize("raw", [1, "1", 10**18 - 1, "000123", "999999999999999999"])
def test_call_ids_are_positive_integers_or_their_digits(raw):
    assert ws_call_id(raw) == int(raw)


@pytest.mark.parametrize("raw", [None, 0, -1, "0", True, 1.0, 1.5, float("inf"), 10**18,
                                 "1" * 19, "12a", " 1", "١٢", [], {}])
def test_anything_else_is_refused_with_invalid_message(raw):
    with pytest.raises(WsError) as err:
        ws_call_id(raw)
    assert err.value.code == "invalid_message"


def test_counters_are_absent_or_integers_a_javascript_number_holds_exactly():
    assert ws_counter({}, "bytes_received") is None
    assert ws_counter({"bytes_received": None}, "bytes_received") is None
    assert ws_counter({"bytes_received": 0}, "bytes_received") == 0
    assert ws_counter({"frames_decoded": MAX_COUNTER}, "frames_decoded") == MAX_COUNTER
    for bad in (MAX_COUNTER + 1, 2**63, -1, 1.5, 1e20, True, "12"):
        with pytest.raises(WsError, match="stats.bytes_received"):
            ws_counter({"bytes_received": bad}, "bytes_received")
