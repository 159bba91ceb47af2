"""tools/peer.py's reading of a browser's trickled ICE candidates (the whole exchange with a
real Chromium is in tests/test_browser_peer.py)."""

from __future__ import annotations

from meterchat.tools.peer import ice_candidate

# What Chromium's RTCIceCandidate.toJSON() sends in a `{type: "candidate"}` signal.
CHROMIUM = {
    "candidate": "candidate:3637473364 1 udp 2122260223 127.0.0.1 50123 typ host generation 0"
                 " ufrag Kp2b network-id 1",
    "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "Kp2b",
}


def test_a_chromium_candidate_becomes_an_aiortc_candidate_for_its_media_line():
    c = ice_candidate(CHROMIUM)
    assert (c.ip, c.port, c.protocol, c.type, c.priority) == \
        ("127.0.0.1", 50123, "udp", "host", 2122260223)
    assert (c.sdpMid, c.sdpMLineIndex) == ("0", 0)


def test_end_of_candidates_and_garbage_are_not_candidates():
    for data in ({"candidate": ""}, {"candidate": "  "}, {}, None, "x", {"candidate": 7}):
        assert ice_candidate(data) is None


def test_a_candidate_without_a_media_line_goes_to_the_first():
    c = ice_candidate({"candidate": CHROMIUM["candidate"]})
    assert c.sdpMid is None and c.sdpMLineIndex == 0
