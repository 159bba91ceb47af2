"""Live time of a call, pure (no I/O; the clock is passed in as monotonic seconds): what
each party's media heartbeats say (PartyMedia), an active call in memory (Runtime) moving
between connecting, live and paused, the bounds on pauses, whose side a pause comes from,
and the decisions that end a call (timeouts, grace, too many pauses) with what the end is
written with (Ending).

Live time runs only while both parties report `connected` with growing counters, each
report fresh for media_timeout_s. A party stops counting at the moment its last good report
goes stale, its report says otherwise, or its socket closes, so a stale party is never
billed past that moment even if noticed later. Pauses are bounded over the whole call
(count and total time), and each pause names the side it comes from (`paused_by`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meterchat.core.units import SECOND_MS
from meterchat.money import billing
from meterchat.money.billing import ACCEPTED_STATES


@dataclass(frozen=True)
class CallLimits:
    """The timers and bounds of a call (config section `billing`)."""

    ring_timeout_s: float
    connect_timeout_s: float
    reconnect_grace_s: float
    max_pauses: int
    max_paused_s: float


@dataclass(frozen=True)
class Step:
    """What one look at a call at a moment decided: the state it moved to (or "paused"
    again, for a pause whose side changed), and the reason it must end, if any."""

    changed: str | None = None
    end_reason: str | None = None


@dataclass(frozen=True)
class MediaRecord:
    """One party's heartbeats summed up for the call's record (table call_media), which a
    dispute is decided on. Times are wall milliseconds."""

    call_id: int
    user_id: int
    reports: int
    good_reports: int
    last_state: str | None
    bytes_received: int | None
    frames_decoded: int | None
    last_report_at_ms: int | None
    socket_open: bool
    updated_at_ms: int


def final_state(state: str, reason: str) -> str:
    """The state a call ends in: a call that rang only is declined, cancelled or missed;
    any other is ended."""
    if state != "ringing":
        return "ended"
    return {"declined": "declined", "cancelled": "cancelled",
            "missed": "missed"}.get(reason, "cancelled")


def hangup_reason(state: str, by_buyer: bool) -> str:
    """A party ends the call: hanging up, or, while it rings, cancelling (the buyer) or
    declining (the seller)."""
    if state == "ringing":
        return "cancelled" if by_buyer else "declined"
    return "buyer_hangup" if by_buyer else "seller_hangup"


@dataclass
class PartyMedia:
    """What one party's heartbeats say. ok_until: the moment this party stops counting."""

    socket_open: bool = False
    ok_until: float = float("-inf")
    last_bytes: int | None = None
    last_frames: int | None = None
    # Kept for the call's record (call_media), which a dispute is decided on.
    reports: int = 0
    good_reports: int = 0
    last_state: str | None = None
    last_report_at: float | None = None

    def report(self, now: float, connected: bool, bytes_received: int | None,
               frames_decoded: int | None, timeout_s: float) -> None:
        grew = (
            bytes_received is not None and frames_decoded is not None
            and self.last_bytes is not None and self.last_frames is not None
            and bytes_received > self.last_bytes and frames_decoded > self.last_frames
        )
        if bytes_received is not None:
            self.last_bytes = bytes_received
        if frames_decoded is not None:
            self.last_frames = frames_decoded
        self.reports += 1
        self.last_state = "connected" if connected else "disconnected"
        self.last_report_at = now
        if connected and grew and self.socket_open:
            self.good_reports += 1
            self.ok_until = now + timeout_s
        else:
            self.ok_until = min(self.ok_until, now)

    def socket_closed(self, now: float) -> None:
        self.socket_open = False
        self.ok_until = min(self.ok_until, now)

    def gone(self, now: float, timeout_s: float) -> bool:
        """This party's side is gone: its socket closed or no report of any kind for
        timeout_s. (A party that still reports, even media lost, is present.) The other
        party cannot make this happen: it is this party's own socket and heartbeats."""
        return (not self.socket_open or self.last_report_at is None
                or now - self.last_report_at >= timeout_s)


@dataclass(frozen=True)
class Ending:
    """An end decided for a call and not yet written (or being written): what it will be
    written with, fixed at the moment it was decided, so a retry changes nothing."""

    state: str
    reason: str
    live_ms: int
    seller_side_failed: bool
    pauses: billing.Pauses


@dataclass
class Runtime:
    """An active call in memory. Times are monotonic seconds."""

    call_id: int
    buyer_id: int
    seller_id: int
    rate_tokens_per_min: int
    state: str
    state_since: float
    media_timeout_s: float
    billed_tenths: int = 0
    live_s: float = 0.0  # accumulated before live_since
    live_since: float | None = None
    parties: dict[int, PartyMedia] = field(default_factory=dict)
    pauses: int = 0
    paused_s: float = 0.0  # pauses that are over
    paused_by: str | None = None  # the current pause's side: buyer, seller or both
    ending: Ending | None = None  # decided; finished once written
    end_failures: int = 0  # writes of the end the database refused
    finished: bool = False

    def __post_init__(self) -> None:
        self.parties = {self.buyer_id: PartyMedia(), self.seller_id: PartyMedia()}

    def other(self, user_id: int) -> int:
        return self.seller_id if user_id == self.buyer_id else self.buyer_id

    def side(self, user_id: int) -> str:
        return "buyer" if user_id == self.buyer_id else "seller"

    def ok_until(self) -> float:
        return min(p.ok_until for p in self.parties.values())

    def live_ms(self, now: float) -> int:
        if self.ending is not None:
            return self.ending.live_ms
        total = self.live_s
        if self.live_since is not None:
            total += max(0.0, min(now, self.ok_until()) - self.live_since)
        return int(total * SECOND_MS)

    def paused_total_s(self, now: float) -> float:
        current = max(0.0, now - self.state_since) if self.state == "paused" else 0.0
        return self.paused_s + current

    def pause_record(self, now: float) -> billing.Pauses:
        return billing.Pauses(self.pauses, int(self.paused_total_s(now) * SECOND_MS),
                              self.paused_by if self.state == "paused" else None)

    def blame(self, now: float) -> str | None:
        """The side a pause comes from, now. Each party reports what it *receives*, so when
        one side's network dies the other side's report (media stalled) often arrives first:
        a party that is gone (socket closed, or no report for media_timeout_s) is therefore
        the one that paused, before a party that only reports media lost; both failing the
        same way is `both`. None while both are fine."""
        failing = [uid for uid, p in self.parties.items() if p.ok_until <= now]
        if not failing:
            return None
        gone = [uid for uid in failing if self.parties[uid].gone(now, self.media_timeout_s)]
        pick = gone or failing
        return "both" if len(pick) == 2 else self.side(pick[0])

    def seller_side_failed(self, now: float) -> bool:
        """The current pause comes from the seller's side being gone, the buyer still there
        (what the immediate-failure refund asks for; the buyer cannot fake it)."""
        return (self.state == "paused" and self.blame(now) == "seller"
                and self.parties[self.seller_id].gone(now, self.media_timeout_s))

    def must_end(self, now: float, reconnect_grace_s: float, max_pauses: int,
                 max_paused_s: float) -> str | None:
        """The end reason of a paused call that may pause no longer, else None: more pauses
        than max_pauses or max_paused_s paused in all over the call (too_many_pauses, which
        no side can use to get a refund), or this pause longer than the grace
        (connection_lost)."""
        if self.state != "paused":
            return None
        if self.pauses > max_pauses or self.paused_total_s(now) >= max_paused_s:
            return "too_many_pauses"
        if now - self.state_since >= reconnect_grace_s:
            return "connection_lost"
        return None

    def accept(self, now: float) -> None:
        self.state = "connecting"
        self.state_since = now

    def report(self, user_id: int, now: float, connected: bool, bytes_received: int | None,
               frames_decoded: int | None) -> None:
        p = self.parties[user_id]
        p.socket_open = True
        p.report(now, connected, bytes_received, frames_decoded, self.media_timeout_s)

    def socket_closed(self, user_id: int, now: float) -> None:
        self.parties[user_id].socket_closed(now)

    def evaluate(self, now: float) -> str | None:
        """Move between connecting, live and paused; returns the new state if it changed,
        or "paused" again when the side the pause comes from changed (the record and both
        parties are told)."""
        if self.state not in ACCEPTED_STATES or self.ending is not None:
            return None
        both_ok = self.ok_until() > now
        if both_ok and self.state in ("connecting", "paused"):
            if self.state == "paused":
                self.paused_s += max(0.0, now - self.state_since)
            self.state, self.state_since, self.live_since = "live", now, now
            self.paused_by = None
            return "live"
        if not both_ok and self.state == "live":
            assert self.live_since is not None
            stopped = max(self.live_since, min(now, self.ok_until()))
            self.live_s += stopped - self.live_since
            self.live_since = None
            self.state, self.state_since = "paused", stopped
            self.pauses += 1
            self.paused_by = self.blame(now)
            return "paused"
        if self.state == "paused":
            by = self.blame(now)
            if by is not None and by != self.paused_by:
                self.paused_by = by
                return "paused"
        return None

    def step(self, now: float, limits: CallLimits) -> Step:
        """One tick's look at a call not yet ending: ring and connect timeouts, then the
        move between live and paused, then the bounds on pauses and the grace."""
        age = now - self.state_since
        if self.state == "ringing":
            return Step(end_reason="missed" if age >= limits.ring_timeout_s else None)
        if self.state == "connecting" and age >= limits.connect_timeout_s:
            return Step(end_reason="failed")
        changed = self.evaluate(now)
        return Step(changed, self.must_end(now, limits.reconnect_grace_s, limits.max_pauses,
                                           limits.max_paused_s))

    def due_tenths(self, now: float) -> int | None:
        """The completed 6-s segments of live time, when more than are billed."""
        if self.state not in ("live", "paused") or self.ending is not None:
            return None
        tenths = billing.completed_tenths(self.live_ms(now))
        return tenths if tenths > self.billed_tenths else None

    def next_due_at(self, now: float) -> float | None:
        """When the next 6-s segment completes if media keeps flowing (monotonic seconds;
        `now` when one is already due), so the meter need not wait for the next tick. None
        while no live time accrues: a paused call is found again by the tick's scan."""
        if self.state != "live" or self.live_since is None or self.ending is not None:
            return None
        live_ms = self.live_ms(now)
        done = billing.completed_tenths(live_ms)
        if done > self.billed_tenths:
            return now
        return now + ((done + 1) * billing.SEGMENT_MS - live_ms) / SECOND_MS

    def decide_end(self, reason: str, now: float) -> Ending:
        """Fix how the call ends, at this moment. The first decision stands: a hangup whose
        write failed stays a hangup when it is written later."""
        if self.ending is None:
            self.ending = Ending(
                final_state(self.state, reason), reason,
                self.live_ms(now) if self.state != "ringing" else 0,
                self.seller_side_failed(now), self.pause_record(now))
        return self.ending

    def media_records(self, now: float, wall_ms: int) -> list[MediaRecord]:
        """Both parties' heartbeat summaries, monotonic times made wall."""
        out = []
        for uid, p in self.parties.items():
            at = (None if p.last_report_at is None
                  else wall_ms - int((now - p.last_report_at) * SECOND_MS))
            out.append(MediaRecord(self.call_id, uid, p.reports, p.good_reports, p.last_state,
                                   p.last_bytes, p.last_frames, at, p.socket_open, wall_ms))
        return out
