"""Seller photos: the `seller_photos` rows (pending, approved, rejected, replaced), the files of
their two sizes under `sellers.photo_dir` (content-addressed names; the database holds only
the names), the operator's queue and decisions (audited in the decision's transaction).

Moderation: an upload is `pending` and shown to nobody but its seller and the operator. A
seller's photo that is already approved stays shown until a newer one is approved; a
rejected upload changes nothing that is shown. Uploading again while one is pending
replaces the pending one (the operator never reviews a photo the seller has withdrawn). The
files of a rejected or replaced photo are deleted (`orphan_files`, then `delete_files` in the
photo thread); its row stays, for the record.

Functions ending in `_tx` write inside the caller's transaction (`db.tx`); `store_files`
and `make` do the CPU and file work and run in the photo thread (`run_in_photo_thread`),
never on the event loop."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from meterchat.core import audit
from meterchat.core.errors import Conflict, NotFound
from meterchat.events import outbox as events
from meterchat.events import rules as event_types
from meterchat.sellers import images

T = TypeVar("T")

STATUSES = ("pending", "approved", "rejected", "replaced")
FILE_NAME = re.compile(r"^[0-9a-f]{64}\.jpg$")
URL_PREFIX = "/api/photos/"

# One photo at a time: decoding is CPU-bound (a 2-core server keeps a core for the calls),
# and Pillow's bomb warning is turned into an error with warnings.catch_warnings, which is
# safe only when no other thread of ours changes the warning filters at the same moment.
_PHOTO_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="photos")


async def run_in_photo_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_PHOTO_THREAD, fn, *args)


@dataclass(frozen=True)
class Photo:
    id: int
    seller_id: int
    seller_name: str
    status: str
    card_file: str
    profile_file: str
    width_px: int
    height_px: int
    upload_bytes: int
    created_at_ms: int
    decided_at_ms: int | None
    reason: str | None


def url(name: str) -> str:
    return URL_PREFIX + name


def _write_atomically(path: Path, data: bytes) -> None:
    if path.exists():
        return  # the same content, by its name
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def make(photo_dir: Path, data: bytes, max_pixels: int) -> images.Processed:
    """Check and re-encode an upload and write both sizes under photo_dir (photo thread)."""
    processed = images.process(data, max_pixels)
    photo_dir.mkdir(parents=True, exist_ok=True)
    for size in (processed.card, processed.profile):
        _write_atomically(photo_dir / size.name, size.data)
    return processed


_SELECT = """
SELECT p.id, p.seller_id, u.display_name AS seller_name, p.status, p.card_file,
       p.profile_file, p.width_px, p.height_px, p.upload_bytes, p.created_at_ms,
       p.decided_at_ms, p.reason
FROM seller_photos p JOIN users u ON u.id = p.seller_id
"""


def _photo(row: sqlite3.Row) -> Photo:
    return Photo(**{k: row[k] for k in row.keys()})


def add_pending_tx(conn: sqlite3.Connection, seller_id: int, processed: images.Processed,
                   upload_bytes: int, at_ms: int) -> Photo:
    """THE place a photo becomes pending: the upload is recorded for review (and the
    operator's `photo.pending` event with it), and a pending upload of the same seller is
    replaced."""
    conn.execute(
        "UPDATE seller_photos SET status = 'replaced', decided_at_ms = ?"
        " WHERE seller_id = ? AND status = 'pending'", (at_ms, seller_id))
    cur = conn.execute(
        "INSERT INTO seller_photos (seller_id, card_file, profile_file, width_px, height_px,"
        " upload_bytes, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (seller_id, processed.card.name, processed.profile.name, processed.width_px,
         processed.height_px, upload_bytes, at_ms))
    photo_id = int(cur.lastrowid or 0)
    events.emit_tx(conn, event_types.PHOTO_PENDING, {
        "photo_id": str(photo_id), "seller_id": str(seller_id)}, at_ms)
    return get(conn, photo_id)


def get(conn: sqlite3.Connection, photo_id: int) -> Photo:
    row = conn.execute(_SELECT + " WHERE p.id = ?", (photo_id,)).fetchone()
    if row is None:
        raise NotFound("no such photo", "photo_not_found")
    return _photo(row)


def of_seller(conn: sqlite3.Connection, seller_id: int) -> dict[str, Photo | None]:
    """The seller's shown photo and the upload waiting for review, each or None."""
    out: dict[str, Photo | None] = {"approved": None, "pending": None, "rejected": None}
    for status in out:
        row = conn.execute(_SELECT + " WHERE p.seller_id = ? AND p.status = ?"
                           " ORDER BY p.id DESC LIMIT 1", (seller_id, status)).fetchone()
        out[status] = None if row is None else _photo(row)
    latest = conn.execute("SELECT MAX(id) AS id FROM seller_photos WHERE seller_id = ?"
                          " AND status != 'replaced'", (seller_id,)).fetchone()["id"]
    rejected = out["rejected"]
    if rejected is not None and rejected.id != latest:
        out["rejected"] = None  # an old refusal, since followed by another upload
    return out


def queue(conn: sqlite3.Connection, status: str | None, limit: int = 100) -> list[Photo]:
    """The operator's list, oldest first (the queue of pending ones is worked in order)."""
    if status is None:
        rows = conn.execute(_SELECT + " ORDER BY p.id DESC LIMIT ?", (limit,))
    else:
        rows = conn.execute(_SELECT + " WHERE p.status = ? ORDER BY p.id LIMIT ?",
                            (status, limit))
    return [_photo(r) for r in rows]


def decide_tx(conn: sqlite3.Connection, photo_id: int, admin_id: int, approve: bool,
              reason: str | None, at_ms: int) -> Photo:
    """Approve (the seller's earlier approved photo becomes `replaced`) or reject a pending
    photo; 409 photo_not_pending for any other. Audited."""
    photo = get(conn, photo_id)
    if photo.status != "pending":
        raise Conflict(f"the photo is {photo.status}, not pending", "photo_not_pending")
    if approve:
        conn.execute("UPDATE seller_photos SET status = 'replaced' WHERE seller_id = ?"
                     " AND status = 'approved'", (photo.seller_id,))
    conn.execute(
        "UPDATE seller_photos SET status = ?, decided_at_ms = ?, decided_by = ?, reason = ?"
        " WHERE id = ?",
        ("approved" if approve else "rejected", at_ms, admin_id, reason, photo_id))
    audit.record(conn, admin_id, "photo.approve" if approve else "photo.reject",
                 f"photo:{photo_id}", reason, at_ms, seller_id=photo.seller_id)
    return get(conn, photo_id)


def orphan_files(conn: sqlite3.Connection, seller_id: int) -> list[str]:
    """Files of the seller's rejected and replaced photos that no pending or approved photo
    (of anybody: names are content hashes) uses."""
    rows = conn.execute(
        "SELECT card_file, profile_file FROM seller_photos WHERE seller_id = ?"
        " AND status IN ('rejected', 'replaced')", (seller_id,)).fetchall()
    names = {n for r in rows for n in (r["card_file"], r["profile_file"])}
    used = {n for n in names if conn.execute(
        "SELECT 1 FROM seller_photos WHERE status IN ('pending', 'approved')"
        " AND (card_file = ? OR profile_file = ?) LIMIT 1", (n, n)).fetchone()}
    return sorted(names - used)


def delete_files(photo_dir: Path, names: list[str]) -> None:
    """Delete stored files (photo thread); one already gone is no error."""
    for name in names:
        if FILE_NAME.match(name):
            (photo_dir / name).unlink(missing_ok=True)


def file_access(conn: sqlite3.Connection, name: str) -> tuple[bool, set[int]]:
    """Whether the file is of an approved photo (public), and whose uploads it is part of."""
    rows = conn.execute(
        "SELECT seller_id, status FROM seller_photos WHERE card_file = ? OR profile_file = ?",
        (name, name)).fetchall()
    return any(r["status"] == "approved" for r in rows), {r["seller_id"] for r in rows}
