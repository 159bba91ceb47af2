"""A buyer's favourite sellers (`favourites`), the opt-in to a mail when one comes online, and
the "came online" notices: which connected buyers get a `seller.online` socket message and
which opted-in buyers a mail, at most one of each per seller per buyer per
`favourites.notice_interval_minutes` (the rule: rules.notice_due; the last times:
`favourite_notices`). Synchronous functions over a sqlite3 connection; `_tx` ones write in
the caller's transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass

from meterchat.mail import messages, outbox
from meterchat.sellers import rules, store
from meterchat.sellers.store import Seller


@dataclass(frozen=True)
class CameOnline:
    """What a seller going online did: the seller as now, and whom to tell on the socket."""

    seller: Seller
    notify_buyer_ids: list[int]
    mails: int = 0


def add_tx(conn: sqlite3.Connection, buyer_id: int, seller_id: int, at_ms: int) -> None:
    """Idempotent; 404 seller_not_found for no such (or a banned) seller."""
    store.get_seller(conn, seller_id)
    conn.execute("INSERT INTO favourites (buyer_id, seller_id, created_at_ms) VALUES (?, ?, ?)"
                 " ON CONFLICT DO NOTHING", (buyer_id, seller_id, at_ms))


def remove_tx(conn: sqlite3.Connection, buyer_id: int, seller_id: int) -> None:
    """Idempotent: removing what is not there is no error."""
    conn.execute("DELETE FROM favourites WHERE buyer_id = ? AND seller_id = ?",
                 (buyer_id, seller_id))


def mail_opt_in(conn: sqlite3.Connection, buyer_id: int) -> bool:
    row = conn.execute("SELECT favourite_online_mail FROM users WHERE id = ?",
                       (buyer_id,)).fetchone()
    return bool(row and row["favourite_online_mail"])


def set_mail_opt_in_tx(conn: sqlite3.Connection, buyer_id: int, on: bool) -> bool:
    conn.execute("UPDATE users SET favourite_online_mail = ? WHERE id = ?",
                 (1 if on else 0, buyer_id))
    return on


def _claim(conn: sqlite3.Connection, buyer_id: int, seller_id: int, kind: str, now_ms: int,
           interval_ms: int) -> bool:
    """Take the buyer's notice of this kind for this seller if it is due, and record it."""
    row = conn.execute("SELECT last_at_ms FROM favourite_notices WHERE buyer_id = ? AND"
                       " seller_id = ? AND kind = ?", (buyer_id, seller_id, kind)).fetchone()
    if not rules.notice_due(row["last_at_ms"] if row else None, now_ms, interval_ms):
        return False
    conn.execute(
        "INSERT INTO favourite_notices (buyer_id, seller_id, kind, last_at_ms)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET last_at_ms = excluded.last_at_ms",
        (buyer_id, seller_id, kind, now_ms))
    return True


def set_online_tx(conn: sqlite3.Connection, seller_id: int, online: bool, now_ms: int,
                  interval_ms: int, connected: Collection[int], links_base: str,
                  interval_minutes: float) -> CameOnline:
    """sellers/store.set_online_tx, and when the seller comes online (was offline): the
    favourite's notices. A buyer with an open socket (`connected`, the hub's users when the
    request came) is told on the socket; an opted-in buyer without one gets a mail through
    the outbox, in this transaction. Buyers who are banned, or on either side of a block with
    the seller, are told nothing."""
    was = conn.execute("SELECT online FROM sellers WHERE user_id = ?", (seller_id,)).fetchone()
    seller = store.set_online_tx(conn, seller_id, online)
    if not online or (was is not None and was["online"]):
        return CameOnline(seller, [])
    rows = conn.execute(
        "SELECT u.id, u.email, u.favourite_online_mail FROM favourites f"
        " JOIN users u ON u.id = f.buyer_id"
        " WHERE f.seller_id = ? AND u.banned_at_ms IS NULL AND NOT EXISTS ("
        "  SELECT 1 FROM user_blocks b WHERE (b.blocker_id = f.buyer_id AND b.blocked_id = ?)"
        "  OR (b.blocker_id = ? AND b.blocked_id = f.buyer_id))",
        (seller_id, seller_id, seller_id)).fetchall()
    notify: list[int] = []
    mails = 0
    for r in rows:
        buyer_id = r["id"]
        if buyer_id in connected:
            if _claim(conn, buyer_id, seller_id, "socket", now_ms, interval_ms):
                notify.append(buyer_id)
        elif r["favourite_online_mail"] and _claim(conn, buyer_id, seller_id, "mail", now_ms,
                                                   interval_ms):
            msg = messages.favourite_online(links_base, seller.display_name, interval_minutes)
            outbox.enqueue_tx(conn, r["email"], msg, now_ms, user_id=buyer_id)
            mails += 1
    return CameOnline(seller, notify, mails)
