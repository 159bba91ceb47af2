"""The call state machine's live clock, with the clock passed in (no server, no sleeps)."""

from __future__ import annotations

from meterchat.calls.live import Runtime
from meterchat.money import billing

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


# ---- pauses: how many, how long, and whose side (clock passed in) -----------------------

def live_call() -> Runtime:
    rt = runtime()
    beat(rt, 2.0, 1)
    beat(rt, 4.0, 2)
    assert rt.state == "live"
    return rt


def test_every_pause_counts_and_the_paused_time_adds_up_over_the_call():
    rt = live_call()
    assert beat(rt, 5.0, 3, who=(B,), connected=False) == "paused"
    assert (rt.pauses, rt.paused_by) == (1, "buyer")
    assert beat(rt, 8.0, 4) == "live"  # paused 5.0 .. 8.0
    assert beat(rt, 9.0, 5, who=(B,), connected=False) == "paused"
    assert rt.pauses == 2
    assert rt.paused_total_s(10.5) == 4.5  # 3 s over, 1.5 s running
    assert rt.pause_record(10.5) == billing.Pauses(2, 4_500, "buyer")
    assert beat(rt, 11.0, 6) == "live"
    assert rt.pause_record(12.0) == billing.Pauses(2, 5_000, None)


def test_a_pause_comes_from_the_side_that_is_gone_not_the_one_that_sees_it():
    rt = live_call()
    # The seller's network dies after its report at 4.0: the buyer sees the video stall
    # first (a present party reporting loss), so the pause starts as the buyer's...
    rt.report(B, 5.0, True, 2000, 60)
    assert rt.evaluate(5.0) == "paused" and rt.paused_by == "buyer"
    # ...until the seller's silence outlasts media_timeout_s: then it is the seller's.
    rt.report(B, 9.0, True, 2000, 60)
    assert rt.evaluate(9.0) is None
    assert rt.evaluate(10.0) == "paused" and rt.paused_by == "seller"
    assert rt.seller_side_failed(10.0)
    # The buyer leaves too: both.
    rt.socket_closed(B, 11.0)
    assert rt.evaluate(11.0) == "paused" and rt.paused_by == "both"
    assert not rt.seller_side_failed(11.0)


def test_a_seller_who_still_reports_lost_media_is_not_a_seller_side_failure():
    # The buyer can stop sending video, so the seller reports `disconnected` while the buyer
    # reports good media: the pause is the seller's side, but the seller is there, so it is
    # no refundable failure.
    rt = live_call()
    for i, t in enumerate((5.0, 7.0, 9.0, 11.0)):
        rt.report(B, t, True, 1000 * (3 + i), 30 * (3 + i))
        rt.report(S, t, False, 1000 * (3 + i), 30 * (3 + i))
        rt.evaluate(t)
    assert rt.state == "paused" and rt.paused_by == "seller" and rt.pauses == 1
    assert not rt.seller_side_failed(11.0)
    # Both say the media is gone (an ICE failure): both.
    assert beat(rt, 12.0, 7, connected=False) == "paused"
    assert rt.paused_by == "both"


def test_a_paused_call_ends_past_either_bound_or_the_grace():
    rt = live_call()
    limits = {"reconnect_grace_s": 30.0, "max_pauses": 2, "max_paused_s": 10.0}
    t = 4.0
    for n in (1, 2):
        t += 1.0
        beat(rt, t, 2 + n, who=(B,), connected=False)
        assert rt.must_end(t + 1.0, **limits) is None
        t += 2.0
        assert beat(rt, t, 3 + n) == "live"
        assert rt.must_end(t, **limits) is None  # never while live
    beat(rt, t + 1.0, 9, who=(B,), connected=False)
    assert rt.pauses == 3
    assert rt.must_end(t + 1.0, **limits) == "too_many_pauses"  # the third pause
    rt = live_call()
    beat(rt, 5.0, 3, who=(B,), connected=False)
    assert rt.must_end(14.9, **limits) is None
    assert rt.must_end(15.0, **limits) == "too_many_pauses"  # 10 s paused in all
    limits["max_paused_s"] = 100.0
    assert rt.must_end(34.9, **limits) is None
    assert rt.must_end(35.0, **limits) == "connection_lost"  # this pause past the grace
