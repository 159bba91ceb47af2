"""Sellers: profile (rate within the operator's limits, bio, tags, languages), the online
flag, the public listing with filters (busy, average rating, call count), and blocks and
reports between users. Synchronous functions over a sqlite3 connection (run them through
Database.read / Database.tx)."""

from __future__ import annotations

import json
import sqlite3

from meterchat.core.db import now_ms
from meterchat.core.errors import Conflict, NotFound, TooManyRequests, Unprocessable

MAX_BIO_CHARS = 2000
MAX_REASON_CHARS = 1000


def clean_labels(values: list[str] | None, what: str) -> list[str]:
    out: list[str] = []
    for v in values or []:
        label = " ".join(v.split()).lower()
        if not label:
            raise Unprocessable(f"{what} must not contain empty strings", "invalid_value")
        if label not in out:
            out.append(label)
    return out


def check_rate(rate: int, min_rate: int, max_rate: int) -> None:
    if not min_rate <= rate <= max_rate:
        raise Unprocessable(
            f"rate must be a whole number of tokens per minute from {min_rate} to {max_rate}",
            "rate_out_of_range",
        )


_SELLER_SELECT = """
SELECT s.user_id, u.display_name, s.rate_tokens_per_min, s.online, s.bio, s.tags_json,
       s.languages_json,
       s.busy,
       CASE WHEN s.rating_count > 0 THEN s.rating_sum * 1.0 / s.rating_count END AS rating,
       s.calls_count AS calls
FROM sellers s JOIN users u ON u.id = s.user_id
"""


def _seller_json(row) -> dict:
    rating = row[8]
    return {
        "id": str(row[0]),
        "display_name": row[1],
        "rate": row[2],
        "online": bool(row[3]),
        "busy": bool(row[7]),
        "rating": None if rating is None else f"{rating:.1f}",
        "calls": row[9],
        "bio": row[4],
        "tags": json.loads(row[5]),
        "languages": json.loads(row[6]),
    }


def get_seller(conn: sqlite3.Connection, user_id: int) -> dict:
    row = conn.execute(
        _SELLER_SELECT + " WHERE s.user_id = ? AND u.banned_at_ms IS NULL", (user_id,)
    ).fetchone()
    if row is None:
        raise NotFound("no such seller", "seller_not_found")
    return _seller_json(row)


def save_profile(conn: sqlite3.Connection, user_id: int, rate: int, bio: str | None,
                 tags: list[str] | None, languages: list[str] | None) -> dict:
    """Create or update a seller's profile; fields left out keep their value."""
    old = conn.execute(
        "SELECT bio, tags_json, languages_json FROM sellers WHERE user_id = ?", (user_id,)
    ).fetchone()
    bio = bio if bio is not None else (old[0] if old else "")
    tags_json = json.dumps(tags) if tags is not None else (old[1] if old else "[]")
    langs_json = json.dumps(languages) if languages is not None else (old[2] if old else "[]")
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
        conn.executemany("INSERT INTO seller_tags (user_id, tag) VALUES (?, ?)",
                         [(user_id, t) for t in tags])
    return get_seller(conn, user_id)


def set_online(conn: sqlite3.Connection, user_id: int, online: bool) -> dict:
    cur = conn.execute(
        "UPDATE sellers SET online = ?, updated_at_ms = ? WHERE user_id = ?",
        (1 if online else 0, now_ms(), user_id),
    )
    if cur.rowcount == 0:
        raise Conflict("set your rate with PUT /api/seller/profile first", "profile_missing")
    return get_seller(conn, user_id)


def online_seller_ids(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT user_id FROM sellers WHERE online = 1")]


def list_sellers(conn: sqlite3.Connection, *, online: bool | None = None,
                 max_rate: int | None = None, tag: str | None = None,
                 language: str | None = None, viewer_id: int | None = None,
                 limit: int = 100) -> list[dict]:
    where = ["u.banned_at_ms IS NULL"]
    args: list = []
    if online is not None:
        where.append("s.online = ?")
        args.append(1 if online else 0)
    if max_rate is not None:
        where.append("s.rate_tokens_per_min <= ?")
        args.append(max_rate)
    if tag:
        where.append("s.user_id IN (SELECT user_id FROM seller_tags WHERE tag = ?)")
        args.append(" ".join(tag.split()).lower())
    if language:
        where.append("EXISTS (SELECT 1 FROM json_each(s.languages_json) WHERE value = ?)")
        args.append(" ".join(language.split()).lower())
    if viewer_id is not None:
        # Neither side of a block sees the other in the listing.
        where.append(
            "NOT EXISTS (SELECT 1 FROM user_blocks b WHERE (b.blocker_id = s.user_id AND"
            " b.blocked_id = ?) OR (b.blocker_id = ? AND b.blocked_id = s.user_id))"
        )
        args += [viewer_id, viewer_id]
    rows = conn.execute(
        _SELLER_SELECT + " WHERE " + " AND ".join(where)
        + " ORDER BY s.online DESC, s.busy, s.calls_count DESC, s.user_id LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [_seller_json(r) for r in rows]


def is_blocked_between(conn: sqlite3.Connection, a: int, b: int) -> bool:
    return conn.execute(
        "SELECT 1 FROM user_blocks WHERE (blocker_id = ? AND blocked_id = ?)"
        " OR (blocker_id = ? AND blocked_id = ?)",
        (a, b, b, a),
    ).fetchone() is not None


def _check_target(conn: sqlite3.Connection, actor_id: int, target_id: int) -> None:
    if actor_id == target_id:
        raise Unprocessable("you cannot do this to yourself", "invalid_target")
    if conn.execute("SELECT 1 FROM users WHERE id = ?", (target_id,)).fetchone() is None:
        raise NotFound("no such user", "user_not_found")


def block(conn: sqlite3.Connection, blocker_id: int, blocked_id: int, reason: str | None) -> None:
    _check_target(conn, blocker_id, blocked_id)
    conn.execute(
        "INSERT OR IGNORE INTO user_blocks (blocker_id, blocked_id, reason, created_at_ms)"
        " VALUES (?, ?, ?, ?)",
        (blocker_id, blocked_id, reason, now_ms()),
    )


def unblock(conn: sqlite3.Connection, blocker_id: int, blocked_id: int) -> None:
    conn.execute("DELETE FROM user_blocks WHERE blocker_id = ? AND blocked_id = ?",
                 (blocker_id, blocked_id))


def report(conn: sqlite3.Connection, reporter_id: int, reported_id: int,
           reason: str | None) -> None:
    _check_target(conn, reporter_id, reported_id)
    recent = conn.execute(
        "SELECT COUNT(*) FROM user_reports WHERE reporter_id = ? AND created_at_ms > ?",
        (reporter_id, now_ms() - 3_600_000),
    ).fetchone()[0]
    if recent >= 20:
        raise TooManyRequests("too many reports in the last hour; try again later")
    conn.execute(
        "INSERT INTO user_reports (reporter_id, reported_id, reason, created_at_ms)"
        " VALUES (?, ?, ?, ?)",
        (reporter_id, reported_id, reason, now_ms()),
    )
