"""The socket messages' JSON codec (core/jsoncodec.py): orjson when installed, else the
standard library, reading and writing the same documents either way."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from meterchat.core import jsoncodec

DOCUMENTS = [
    '{"type": "media", "call_id": "12", "state": "connected", '
    '"stats": {"bytes_received": 150000, "frames_decoded": 60}}',
    '{"type": "signal", "call_id": 7, "data": {"sdp": "v=0\\r\\n\\u00e9", "n": [1, 2.5, null]}}',
    '{"a": 1, "a": 2}',  # the last of repeated keys wins, as in the standard parser
    '"\\ud800"',  # a lone surrogate: orjson refuses it, the standard parser reads it
    '{"x": NaN, "y": Infinity}',  # not JSON, but the standard parser takes it
    "[]", "{}", '"text"', "123", "true",
]


@pytest.fixture(params=["as installed", "standard library"])
def codec(request, monkeypatch):
    if request.param == "as installed":
        yield jsoncodec
        return
    monkeypatch.setitem(sys.modules, "orjson", None)  # as if orjson were not installed
    fallback = importlib.reload(jsoncodec)
    assert fallback.NAME == "json"
    yield fallback
    monkeypatch.undo()
    importlib.reload(jsoncodec)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_reads_what_the_standard_parser_reads(codec, text):
    got, want = codec.loads(text), json.loads(text)
    assert repr(got) == repr(want)  # repr: NaN equals nothing, not even itself


@pytest.mark.parametrize("text", ["", "{", "[1,]", "{'a': 1}", "\x00", "[" * 100_000])
def test_refuses_what_the_standard_parser_refuses(codec, text):
    with pytest.raises((ValueError, RecursionError)):
        json.loads(text)
    with pytest.raises((ValueError, RecursionError)):
        codec.loads(text)


def test_writes_json_the_standard_parser_reads_back(codec):
    meter = {"type": "meter", "call_id": "12", "live_seconds": 61, "billed_tenths": 10,
             "charged": "1.0000", "balance": None, "note": "é \u2028"}
    assert json.loads(codec.dumps(meter)) == meter
    # What orjson cannot write, the standard writer does (or refuses as it always did).
    assert json.loads(codec.dumps({1: "int key", "big": 2**70})) == {"1": "int key",
                                                                    "big": 2**70}
    with pytest.raises((TypeError, ValueError)):
        codec.dumps({"x": object()})
