"""The rules of the operator's search (pure, no I/O): what a query may be, which keys it
matches, and how its text becomes LIKE patterns with `%` and `_` taken literally.

One query text is matched against three keys at once: the user id (when the text is an id:
digits, as the API writes ids, optionally after a `#` as the page shows them), the email
(the whole address or its beginning, in any case) and the display name (any part of it, in
any case). A query is 1 to MAX_QUERY_CHARS characters after trimming; one that is not an id
needs MIN_TEXT_CHARS at least (a single letter would match most users). No query at all
lists every user, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from meterchat.core.errors import Unprocessable

MIN_TEXT_CHARS = 2
MAX_QUERY_CHARS = 254  # the longest email address
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 10_000
LIKE_ESCAPE = "\\"
# Ids are 1-18 digits (core/validate.py): SQLite's INTEGER stops at 9.2e18.
MAX_ID_DIGITS = 18


@dataclass(frozen=True)
class UserQuery:
    """A parsed search: `user_id` when the text is an id, the exact email (lower case), the
    email prefix pattern and the display name pattern (LIKE, escaped with LIKE_ESCAPE)."""

    text: str
    user_id: int | None
    email: str
    email_prefix: str
    name_part: str


def like_escape(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '\\': the escape character itself, `%`
    and `_` each get the escape character in front."""
    return (text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
            .replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_"))


def id_of(text: str) -> int | None:
    """The user id a query names: "12" or "#12" (ASCII digits, 1-18 of them)."""
    digits = text[1:] if text.startswith("#") else text
    if 0 < len(digits) <= MAX_ID_DIGITS and digits.isascii() and digits.isdigit():
        return int(digits)
    return None


def parse_user_query(raw: str | None) -> UserQuery | None:
    """The query `q` of GET /api/admin/users: None when there is none (every user);
    422 `query_too_short` / `query_too_long` for one that is given."""
    if raw is None:
        return None
    text = " ".join(raw.split())
    if len(text) > MAX_QUERY_CHARS:
        raise Unprocessable(f"q must be at most {MAX_QUERY_CHARS} characters",
                            "query_too_long")
    user_id = id_of(text)
    if not text or (user_id is None and len(text) < MIN_TEXT_CHARS):
        raise Unprocessable(
            f"q must be a user id or at least {MIN_TEXT_CHARS} characters of an email or a"
            " display name", "query_too_short")
    folded = text.lower()
    return UserQuery(text=text, user_id=user_id, email=folded,
                     email_prefix=like_escape(folded) + "%",
                     name_part="%" + like_escape(text) + "%")
