"""Password hashes: argon2id, verified in constant shape whether or not the account exists.
Hashing is CPU work, so callers run it off the event loop (`asyncio.to_thread`)."""

from __future__ import annotations

import base64
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    """argon2id with the configured cost (server.password_hash_time_cost, _memory_kib)."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verified against when the email is unknown, so timing does not reveal accounts: a
        # hash of the same cost that no password matches, written out rather than computed
        # (a hash at the default cost would add 0.2 s to every start).
        salt, digest = (base64.b64encode(secrets.token_bytes(n)).rstrip(b"=").decode()
                        for n in (self._ph.salt_len, self._ph.hash_len))
        self._dummy = (f"$argon2id$v=19$m={self._ph.memory_cost},t={self._ph.time_cost},"
                       f"p={self._ph.parallelism}${salt}${digest}")

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; False for a wrong one and for no account (None),
        after the same work."""
        try:
            return self._ph.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
