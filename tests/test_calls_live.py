"""calls/live.py alone: the call state machine's live clock, pauses and the decisions that
end a call, with the clock passed in (no server, no sleeps)."""

from __future__ import annotations

from meterchat.calls.live import (
    CallLimits,
    Ending,
    MediaRecord,
    Runtime,
    Step,
    final_state,
    hangup_reason,
)
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


# ---- one tick's look at a call: timeouts, grace, bounds (clock passed in) ----------------

LIMITS = CallLimits(ring_timeout_s=30.0, connect_timeout_s=20.0, reconnect_grace_s=10.0,
                    max_pauses=5, max_paused_s=60.0)


def test_a_call_rings_until_the_ring_timeout_then_is_missed():
    rt = Runtime(7, B, S, 600, "ringing", 100.0, media_timeout_s=6.0)
    assert rt.step(129.9, LIMITS) == Step()
    assert rt.step(130.0, LIMITS) == Step(end_reason="missed")


def test_an_accepted_call_without_media_fails_at_the_connect_timeout():
    rt = runtime()  # accepted at 1.0
    assert rt.step(20.9, LIMITS) == Step()
    assert rt.step(21.0, LIMITS) == Step(end_reason="failed")
    rt = runtime()
    beat(rt, 2.0, 1)
    beat(rt, 20.5, 2)  # live just before the timeout: it does not fail
    assert rt.step(21.0, LIMITS) == Step()


def test_the_tick_notices_a_stale_report_and_ends_the_pause_past_the_grace():
    rt = live_call()  # live since 4.0, last reports at 4.0: good until 10.0
    assert rt.step(9.0, LIMITS) == Step()
    assert rt.step(12.0, LIMITS) == Step(changed="paused")  # paused since 10.0
    assert rt.step(19.9, LIMITS).end_reason is None
    assert rt.step(20.0, LIMITS) == Step(end_reason="connection_lost")


def test_completed_segments_fall_due_once_each():
    rt = live_call()  # live since 4.0
    beat(rt, 9.0, 3)
    assert rt.due_tenths(9.0) is None  # 5 s: no segment completed
    assert rt.due_tenths(10.0) == 1
    rt.billed_tenths = 1
    assert rt.due_tenths(10.0) is None
    beat(rt, 14.0, 4)
    assert rt.due_tenths(16.0) == 2
    assert Runtime(8, B, S, 600, "ringing", 0.0, 6.0).due_tenths(100.0) is None


def test_the_next_segment_is_due_when_its_6_s_of_live_time_complete():
    rt = live_call()  # live since 4.0, reports valid until 10.0
    assert rt.next_due_at(5.0) == 10.0
    beat(rt, 9.0, 3)
    assert rt.next_due_at(9.5) == 10.0
    assert rt.next_due_at(10.0) == 10.0  # due now: billed at once
    rt.billed_tenths = 1
    beat(rt, 14.0, 4)
    assert rt.next_due_at(14.0) == 16.0
    beat(rt, 15.0, 4)  # counters stalled: paused, no live time accrues
    assert rt.state == "paused"
    assert rt.next_due_at(15.0) is None
    assert Runtime(8, B, S, 600, "ringing", 0.0, 6.0).next_due_at(100.0) is None


def test_the_first_end_decided_stands_with_the_live_time_of_that_moment():
    rt = live_call()
    beat(rt, 7.0, 3)
    ending = rt.decide_end("buyer_hangup", 7.5)
    assert ending == Ending("ended", "buyer_hangup", 3_500, False, billing.Pauses())
    # A retry later (the write failed) changes nothing: not the reason, not the live time.
    assert rt.decide_end("server_shutdown", 50.0) is ending
    assert rt.live_ms(50.0) == 3_500


def test_a_call_that_only_rang_ends_with_no_live_time():
    rt = Runtime(7, B, S, 600, "ringing", 0.0, media_timeout_s=6.0)
    assert rt.decide_end("missed", 30.0) == Ending("missed", "missed", 0, False,
                                                  billing.Pauses())


def test_the_end_records_a_seller_side_failure_and_the_pauses():
    rt = live_call()
    rt.report(B, 5.0, True, 3000, 90)
    rt.report(B, 9.0, True, 4000, 120)
    rt.report(B, 11.0, True, 5000, 150)
    assert rt.evaluate(11.0) == "paused"  # the seller's last report (4.0) went stale
    assert rt.paused_by == "seller"
    ending = rt.decide_end("connection_lost", 13.0)
    assert ending.seller_side_failed and ending.live_ms == 6_000
    assert ending.pauses == billing.Pauses(1, 3_000, "seller")


def test_final_states_and_hangup_reasons():
    assert [final_state("ringing", r) for r in ("declined", "cancelled", "missed",
                                                "banned")] == [
        "declined", "cancelled", "missed", "cancelled"]
    assert final_state("live", "declined") == "ended"
    assert hangup_reason("ringing", by_buyer=True) == "cancelled"
    assert hangup_reason("ringing", by_buyer=False) == "declined"
    assert hangup_reason("paused", by_buyer=True) == "buyer_hangup"
    assert hangup_reason("live", by_buyer=False) == "seller_hangup"


def test_media_records_turn_monotonic_report_times_into_wall_time():
    rt = live_call()  # both reported last at 4.0
    rt.socket_closed(S, 5.0)
    buyer, seller = rt.media_records(now=6.5, wall_ms=1_000_000)
    assert buyer == MediaRecord(7, B, 2, 1, "connected", 2000, 60, 997_500, True, 1_000_000)
    assert seller.socket_open is False and seller.last_report_at_ms == 997_500
    fresh = Runtime(8, B, S, 600, "ringing", 0.0, 6.0)
    assert [m.last_report_at_ms for m in fresh.media_records(1.0, 5)] == [None, None]
