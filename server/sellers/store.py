"""Seller profiles and presence: the `sellers` table (rate, bio, tags, languages, the online
flag; busy, calls and rating kept by triggers) and the public listing with its filters.
Synchronous functions over a sqlite3 connection (run them through Database.read /
Database.tx); rows are read by name into `Seller`."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from meterchat.core.db import now_ms
from meterchat.core.errors import Conflict, NotFound
from meterchat.sellers.rules import label

__all__ = [
    "Seller", "get_seller", "list_sellers", "online_seller_ids", "save_profile_tx",
    "set_online_tx",
]


@dataclass(frozen=True)
class Seller:
    user_id: int
    display_name: str
    rate: int  # tokens per minute
    online: bool
    busy: bool  # in a call (ringing, connecting or live)
    rating: float | None  # average stars; None before the first rating
    calls: int  # finished calls that were billed
    bio: str
    tags: list[str]
    languages: list[str]
    # The approved photo's two files (sellers/photos.py), or None: initials are shown.
    photo_card: str | None = None
    photo_profile: str | None = None
    # In the viewer's favourites (always False for a listing without a viewer).
    favourite: bool = False


_SELECT_SELLER = """
SELECT s.user_id, u.display_name, s.rate_tokens_per_min, s.online, s.bio, s.tags_json,
       s.languages_json, s.busy,
       CASE WHEN s.rating_count > 0 THEN s.rating_sum * 1.0 / s.rating_count END AS rating,
       s.calls_count, p.card_file AS photo_card, p.profile_file AS photo_profile,
       EXISTS (SELECT 1 FROM favourites f WHERE f.buyer_id = ? AND f.seller_id = s.user_id)
           AS favourite
FROM sellers s JOIN users u ON u.id = s.user_id
LEFT JOIN seller_photos p ON p.seller_id = s.user_id AND p.status = 'approved'
"""


def _seller(row: sqlite3.Row) -> Seller:
    return Seller(
        user_id=row["user_id"],
        display_name=row["display_name"],
        rate=row["rate_tokens_per_min"],
        online=bool(row["online"]),
        busy=bool(row["busy"]),
        rating=row["rating"],
        calls=row["calls_count"],
        bio=row["bio"],
        tags=json.loads(row["tags_json"]),
        languages=json.loads(row["languages_json"]),
        photo_card=row["photo_card"],
        photo_profile=row["photo_profile"],
        favourite=bool(row["favourite"]),
    )


def get_seller(conn: sqlite3.Connection, user_id: int, viewer_id: int | None = None) -> Seller:
    """A seller who is not banned; 404 seller_not_found otherwise."""
    row = conn.execute(
        _SELECT_SELLER + " WHERE s.user_id = ? AND u.banned_at_ms IS NULL",
        (viewer_id or 0, user_id),
    ).fetchone()
    if row is None:
        raise NotFound("no such seller", "seller_not_found")
    return _seller(row)


def commission_ppm_of(conn: sqlite3.Connection, user_id: int) -> int | None:
    """The seller's own commission (sellers.commission_ppm, set by the operator), or None
    when the default of billing.commission_percent applies."""
    row = conn.execute("SELECT commission_ppm FROM sellers WHERE user_id = ?",
                       (user_id,)).fetchone()
    return None if row is None else row["commission_ppm"]


def save_profile_tx(conn: sqlite3.Connection, user_id: int, rate: int, bio: str | None,
                    tags: list[str] | None, languages: list[str] | None) -> Seller:
    """Create or update a seller's profile; fields given as None keep their value. The
    values are checked already (rules.py)."""
    old = conn.execute(
        "SELECT bio, tags_json, languages_json FROM sellers WHERE user_id = ?", (user_id,)
    ).fetchone()
    bio = bio if bio is not None else (old["bio"] if old else "")
    tags_json = json.dumps(tags) if tags is not None else (old["tags_json"] if old else "[]")
    langs_json = (json.dumps(languages) if languages is not None
                  else (old["languages_json"] if old else "[]"))
    conn.execute(
        "INSERT INTO sellers (user_id, rate_tokens_per_min, bio, tags_json, languages_json,"
        " updated_at_ms) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET rate_tokens_per_min = excluded.rate_tokens_per_min,"
        " bio = excluded.bio, tags_json = excluded.tags_json,"
        " languages_json = excluded.languages_json, updated_at_ms = excluded.updated_at_ms",
        (user_id, rate, bio, tags_json, langs_json, now_ms()),
    )
    if tags is not None:
        conn.execute("DELETE FROM seller_tags WHERE user_id = ?", (user_id,))
        # Searched in lower case; saved and shown as typed (tags_json).
        conn.executemany("INSERT INTO seller_tags (user_id, tag) VALUES (?, ?)",
                         [(user_id, label(t)) for t in tags])
    return get_seller(conn, user_id)


def set_online_tx(conn: sqlite3.Connection, user_id: int, online: bool) -> Seller:
    """Go online or offline; 409 profile_missing before the first profile."""
    cur = conn.execute(
        "UPDATE sellers SET online = ?, updated_at_ms = ? WHERE user_id = ?",
        (1 if online else 0, now_ms(), user_id),
    )
    if cur.rowcount == 0:
        raise Conflict("set your rate with PUT /api/seller/profile first", "profile_missing")
    return get_seller(conn, user_id)


def online_seller_ids(conn: sqlite3.Connection) -> list[int]:
    return [r["user_id"] for r in conn.execute("SELECT user_id FROM sellers WHERE online = 1")]


def list_sellers(conn: sqlite3.Connection, *, online: bool | None = None,
                 max_rate: int | None = None, tag: str | None = None,
                 language: str | None = None, viewer_id: int | None = None,
                 favourites: bool = False, limit: int = 100) -> list[Seller]:
    """The listing: sellers who are not banned, online first, then free before busy, then
    by finished calls (the index sellers_listing gives this order without sorting);
    `favourites`: only the viewer's favourites."""
    where = ["u.banned_at_ms IS NULL"]
    args: list[Any] = [viewer_id or 0]
    if favourites:
        where.append("s.user_id IN (SELECT seller_id FROM favourites WHERE buyer_id = ?)")
        args.append(viewer_id or 0)
    if online is not None:
        where.append("s.online = ?")
        args.append(1 if online else 0)
    if max_rate is not None:
        where.append("s.rate_tokens_per_min <= ?")
        args.append(max_rate)
    if tag:
        where.append("s.user_id IN (SELECT user_id FROM seller_tags WHERE tag = ?)")
        args.append(label(tag))
    if language:
        # Saved as typed; compared in lower case (fold(): Python's, for every alphabet).
        where.append("EXISTS (SELECT 1 FROM json_each(s.languages_json) WHERE fold(value) = ?)")
        args.append(label(language))
    if viewer_id is not None:
        # Neither side of a block sees the other in the listing.
        where.append(
            "NOT EXISTS (SELECT 1 FROM user_blocks b WHERE (b.blocker_id = s.user_id AND"
            " b.blocked_id = ?) OR (b.blocker_id = ? AND b.blocked_id = s.user_id))"
        )
        args += [viewer_id, viewer_id]
    rows = conn.execute(
        _SELECT_SELLER + " WHERE " + " AND ".join(where)
        + " ORDER BY s.online DESC, s.busy, s.calls_count DESC, s.user_id LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [_seller(r) for r in rows]
