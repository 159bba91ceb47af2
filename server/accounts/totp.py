"""TOTP two-factor rules (RFC 6238 through pyotp: 30-second steps, 6 digits, SHA-1) and the
recovery codes (pure, no I/O). A code is accepted once: the step it matched is stored and a
code of that step or an earlier one is refused (replay). One step of clock skew each way."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import pyotp

STEP_S = 30
DIGITS = 6
SKEW_STEPS = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)
_RECOVERY_CHARS = 10
_CODE = re.compile(r"^[0-9]{6}$")  # ASCII digits only: \d would take other scripts' digits


def new_secret() -> str:
    return pyotp.random_base32()  # 32 base32 characters: 160 bits, as RFC 4226 advises


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=account, issuer_name=issuer)


def step_at(now_s: float) -> int:
    return int(now_s // STEP_S)


def code_at(secret: str, step: int) -> str:
    return str(pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).generate_otp(step))


def matching_step(secret: str, code: str, now_s: float, last_step: int | None) -> int | None:
    """The time step whose code this is (now, or one step before or after), not at or before
    the last accepted step; None when it matches none."""
    code = code.strip().replace(" ", "")
    if not _CODE.match(code):
        return None
    now = step_at(now_s)
    found = None
    for step in range(now - SKEW_STEPS, now + SKEW_STEPS + 1):
        # Every candidate is compared (constant shape), the first match kept.
        if hmac.compare_digest(code_at(secret, step), code) and found is None:
            found = step
    if found is None or (last_step is not None and found <= last_step):
        return None
    return found


def new_recovery_codes() -> list[str]:
    """Ten codes like `k7m2q-x9hfa`, shown to the user once."""
    out = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_CHARS))
        out.append(f"{raw[:5]}-{raw[5:]}")
    return out


def normalize_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def is_recovery_code(code: str) -> bool:
    n = normalize_recovery_code(code)
    return len(n) == _RECOVERY_CHARS and all(c in _RECOVERY_ALPHABET for c in n)


def recovery_sha256(code: str) -> str:
    """Codes carry ~50 random bits and are used once, so a plain SHA-256 keeps them safe at
    rest (a slow hash would only slow the login that uses one)."""
    return hashlib.sha256(normalize_recovery_code(code).encode()).hexdigest()
