"""The call state machine's live clock, with the clock passed in (no server, no sleeps)."""

from __future__ import annotations

from server.calls import Runtime

B, S = 1, 2


def runtime() -> Runtime:
    rt = Runtime(7, B, S, 600, "ringing", 0.0, media_timeout_s=6.0)
    rt.accept(1.0)
    return rt


def beat(rt: Runtime, now: float, n: int, who=(B, S), connected=True) -> str | None:
    for uid in who:
        rt.report(uid, now, connected, 1000 * n, 30 * n)
    return rt.evaluate(now)


def test_goes_live_only_when_both_report_growing_counters():
    rt = runtime()
    assert beat(rt, 2.0, 1) is None  # first reports: nothing to compare yet
    assert beat(rt, 4.0, 2, who=(B,)) is None  # only one party
    assert rt.state == "connecting"
    assert beat(rt, 4.1, 2, who=(S,)) == "live"
    assert rt.live_ms(10.0) == 5_900  # from 4.1 to now


def test_live_time_stops_where_a_stale_report_expires():
    rt = runtime()
    beat(rt, 2.0, 1)
    beat(rt, 4.0, 2)
    assert rt.state == "live"
    beat(rt, 6.0, 3)
    # No report after t=6: the last good ones expire at 12; noticed at 15.
    assert rt.evaluate(15.0) == "paused"
    assert rt.live_ms(15.0) == 8_000  # 4.0 .. 12.0
    assert rt.state_since == 12.0


def test_stalled_counters_pause_at_once_and_resume_when_they_grow():
    rt = runtime()
    beat(rt, 2.0, 1)
    beat(rt, 4.0, 2)
    rt.report(B, 6.0, True, 3000, 90)
    rt.report(S, 6.0, True, 2000, 60)  # the seller receives nothing new
    assert rt.evaluate(6.0) == "paused"
    assert rt.live_ms(6.0) == 2_000
    assert beat(rt, 14.0, 4) == "live"  # grew again
    assert rt.live_ms(16.0) == 4_000


def test_a_disconnected_report_pauses():
    rt = runtime()
    beat(rt, 2.0, 1)
    beat(rt, 4.0, 2)
    assert beat(rt, 5.0, 3, who=(S,), connected=False) == "paused"
    assert rt.live_ms(9.0) == 1_000


def test_a_closed_socket_pauses_at_once():
    rt = runtime()
    beat(rt, 2.0, 1)
    beat(rt, 4.0, 2)
    rt.socket_closed(B, 5.5)
    assert rt.evaluate(5.5) == "paused"
    assert rt.live_ms(100.0) == 1_500
    # Reports from a party whose socket is gone in the runtime are not enough by themselves:
    # a new report marks the socket open again (it came over a socket) and counts.
    assert beat(rt, 7.0, 3) == "live"


def test_counters_that_go_backwards_do_not_count():
    rt = runtime()
    beat(rt, 2.0, 5)
    beat(rt, 4.0, 6)
    assert rt.state == "live"
    assert beat(rt, 6.0, 1) == "paused"
