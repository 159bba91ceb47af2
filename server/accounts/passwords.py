"""Password hashes: argon2id, verified in constant shape whether or not the account exists.
Hashing is CPU work, so callers run it off the event loop (`asyncio.to_thread`)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    """argon2id with the configured cost (server.password_hash_time_cost, _memory_kib)."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verified against when the email is unknown, so timing does not reveal accounts.
        self._dummy = self._ph.hash("not-a-real-password-" + secrets.token_hex(8))

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
