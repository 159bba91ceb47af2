"""The sellers' rules (pure, no I/O): a rate within the operator's limits, how tags and
languages are kept (as the seller typed them, white space tidied, each once whatever its
case) and searched (lower case), the length of a bio and of a block or report reason, how
many reports one user may file per hour, and when a buyer may be told again that a
favourite came online."""

from __future__ import annotations

from meterchat.core.errors import Unprocessable

MAX_BIO_CHARS = 2000
MAX_REASON_CHARS = 1000
REPORTS_PER_HOUR = 20


def label(text: str) -> str:
    """A tag or language as searched: inner white space one space, lower case."""
    return " ".join(text.split()).lower()


def shown_label(text: str) -> str:
    """A tag or language as saved and shown: the seller's own spelling and case, inner white
    space one space."""
    return " ".join(text.split())


def clean_labels(values: list[str] | None, what: str) -> list[str]:
    """Tags or languages as the seller typed them, in the order given, each once (the first
    spelling of labels equal in lower case); empty ones are 422."""
    out: list[str] = []
    seen: set[str] = set()
    for v in values or []:
        lab = shown_label(v)
        if not lab:
            raise Unprocessable(f"{what} must not contain empty strings", "invalid_value")
        if label(lab) not in seen:
            seen.add(label(lab))
            out.append(lab)
    return out


def check_rate(rate: int, min_rate: int, max_rate: int) -> None:
    """billing.min_rate <= rate <= billing.max_rate, whole tokens per minute."""
    if not min_rate <= rate <= max_rate:
        raise Unprocessable(
            f"rate must be a whole number of tokens per minute from {min_rate} to {max_rate}",
            "rate_out_of_range",
        )


def notice_due(last_at_ms: int | None, now_ms: int, interval_ms: int) -> bool:
    """Whether a buyer may be told (again) that a favourite seller came online: never told,
    or told at least `favourites.notice_interval_minutes` ago. A clock that went back (a
    last notice in the future) counts as within the interval."""
    if last_at_ms is None:
        return True
    return now_ms - last_at_ms >= interval_ms
