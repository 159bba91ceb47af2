"""Personal deposit addresses (deposits.mode = "address_per_user"): one per buyer, derived
from `chain.deposit_xpub` at an index allocated once in `deposit_addresses` (UNIQUE on the
user and on the index, never reused), and `PersonalAddresses`, the in-memory map the
watcher looks every Transfer log up in (one set lookup per log, never a query per address),
loaded at start and added to when an address is allocated.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from meterchat.chain import hd


@dataclass(frozen=True)
class PersonalAddress:
    user_id: int
    index: int
    address: str


def _of(row: sqlite3.Row) -> PersonalAddress:
    return PersonalAddress(user_id=row["user_id"], index=row["derivation_index"],
                           address=row["address"])


def of_user(conn: sqlite3.Connection, user_id: int) -> PersonalAddress | None:
    row = conn.execute("SELECT user_id, derivation_index, address FROM deposit_addresses"
                       " WHERE user_id = ?", (user_id,)).fetchone()
    return _of(row) if row else None


def of_address(conn: sqlite3.Connection, address: str) -> PersonalAddress | None:
    row = conn.execute("SELECT user_id, derivation_index, address FROM deposit_addresses"
                       " WHERE address = ?", (address,)).fetchone()
    return _of(row) if row else None


def all_addresses(conn: sqlite3.Connection) -> list[PersonalAddress]:
    return [_of(r) for r in conn.execute(
        "SELECT user_id, derivation_index, address FROM deposit_addresses"
        " ORDER BY derivation_index")]


def allocate_tx(conn: sqlite3.Connection, user_id: int, xpub: str,
                at_ms: int) -> PersonalAddress:
    """The user's address, allocating the next index the first time (inside the caller's
    write transaction: two requests at once get the same one)."""
    seen = of_user(conn, user_id)
    if seen is not None:
        return seen
    index: int = conn.execute("SELECT COALESCE(MAX(derivation_index) + 1, 0) AS next"
                              " FROM deposit_addresses").fetchone()["next"]
    address = hd.address_at(xpub, index)
    conn.execute("INSERT INTO deposit_addresses (user_id, derivation_index, address,"
                 " created_at_ms) VALUES (?, ?, ?, ?)", (user_id, index, address, at_ms))
    return PersonalAddress(user_id=user_id, index=index, address=address)


class PersonalAddresses:
    """address -> owner, in memory. Single event loop: no lock needed."""

    def __init__(self, known: list[PersonalAddress] | None = None) -> None:
        self._owner: dict[str, PersonalAddress] = {}
        for a in known or []:
            self.add(a)

    def add(self, a: PersonalAddress) -> None:
        self._owner[a.address] = a

    def get(self, address: str) -> PersonalAddress | None:
        return self._owner.get(address)

    def __contains__(self, address: object) -> bool:
        return address in self._owner

    def __len__(self) -> int:
        return len(self._owner)
