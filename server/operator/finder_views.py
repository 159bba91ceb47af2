"""The JSON of what the operator finds (finder.py): a user as a search hit and on their page,
a call with its parties, a report. Ids are strings, amounts token strings, times `iso_ms`.
A call's own view is the calls room's (`call_json`, or the call manager's for a call under
way, with its live time), handed in by the handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meterchat.calls.store import CallRow
from meterchat.core.units import iso_ms, musdt_to_tokens_str
from meterchat.deposits.views import deposit_view
from meterchat.operator.finder import ListedCall, Party, ReportRow, UserHit, UserPage

View = dict[str, Any]
# A call row as the API shows it (the manager's view: live time of a call under way).
CallView = Callable[[CallRow], View]


def user_view(u: UserHit) -> View:
    out: View = {
        "id": str(u.id), "email": u.email, "role": u.role, "display_name": u.display_name,
        "created_at": iso_ms(u.created_at_ms),
        "banned": u.banned_at_ms is not None, "banned_at": iso_ms(u.banned_at_ms),
        "ban_reason": u.ban_reason, "withdrawals_blocked": u.withdrawals_blocked,
        "email_verified": u.email_verified, "two_factor": u.two_factor,
        "balance": {"available": musdt_to_tokens_str(u.available_musdt),
                    "held": musdt_to_tokens_str(u.held_musdt),
                    "pending": musdt_to_tokens_str(u.pending_musdt)},
    }
    if u.matched:
        out["matched"] = u.matched
    return out


def party_view(p: Party) -> View:
    return {"id": str(p.id), "display_name": p.display_name, "email": p.email}


def call_item(c: ListedCall, view: CallView) -> View:
    return {**view(c.call), "buyer": party_view(c.buyer), "seller": party_view(c.seller)}


def report_view(r: ReportRow) -> View:
    return {
        "id": str(r.id), "reporter": party_view(r.reporter), "reported": party_view(r.reported),
        "reason": r.reason, "created_at": iso_ms(r.created_at_ms),
        "status": "open" if r.closed_at_ms is None else "closed",
        "closed_at": iso_ms(r.closed_at_ms), "outcome": r.outcome,
        "call_id": None if r.call_id is None else str(r.call_id),
    }


def user_page_view(page: UserPage, view: CallView) -> View:
    """GET /api/admin/users/{id}: `user` keeps the fields it always had (moderation state)
    and adds the balance; each list is newest first, at most `list_limit` long, and
    `more[name]` says whether older entries exist beyond it."""
    uid = page.user.id
    calls = []
    for c in page.calls:
        item = call_item(c, view)
        item["as"] = "buyer" if c.call.buyer_id == uid else "seller"
        calls.append(item)
    return {
        "user": user_view(page.user),
        "bonus": page.bonus,
        "calls": calls,
        "deposits": [deposit_view(d, admin=True) for d in page.deposits],
        "withdrawals": [w.view(admin=True) for w in page.withdrawals],
        "reports_by": [report_view(r) for r in page.reports_by],
        "reports_about": [report_view(r) for r in page.reports_about],
        "audit_log": page.audit_log,
        "list_limit": page.limit,
        "more": page.more,
    }
