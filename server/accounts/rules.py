"""The sign-up rules (pure, no I/O): roles, what makes an email address, a password and a
display name acceptable. Each raises a domain error naming the field."""

from __future__ import annotations

import re

from meterchat.core.errors import Unprocessable

ROLES = ("buyer", "seller", "admin")
# Admins are created by the operator (`meterchat user create --role admin`), never signed up.
SELF_REGISTER_ROLES = ("buyer", "seller")
MAX_EMAIL_CHARS = 254
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
MAX_DISPLAY_NAME_CHARS = 60
# Practical email check: one @, a dot in the domain, no spaces; the mailbox proves the rest.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")


def normalize_email(email: str) -> str:
    """The address as stored and looked up: trimmed, lower case."""
    e = email.strip().lower()
    if len(e) > MAX_EMAIL_CHARS or not _EMAIL.match(e):
        raise Unprocessable("email is not a valid address", "invalid_email")
    return e


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise Unprocessable(
            f"password must be at least {MIN_PASSWORD_CHARS} characters", "weak_password"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise Unprocessable("password is too long", "invalid_password")


def check_display_name(name: str) -> str:
    """The name as shown: inner runs of white space made one space, trimmed."""
    n = " ".join(name.split())
    if not n or len(n) > MAX_DISPLAY_NAME_CHARS:
        raise Unprocessable(
            f"display_name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters",
            "invalid_display_name",
        )
    return n


def check_role(role: str) -> None:
    if role not in ROLES:
        raise Unprocessable(f"role must be one of {', '.join(ROLES)}", "invalid_role")
