"""The mails meterchat sends, each with a plain-text and an HTML part (pure: no I/O). Every
value put into the HTML is escaped; links are built on `mail.public_url`."""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import quote

from meterchat.core.config import Config


@dataclass(frozen=True)
class Message:
    kind: str
    subject: str
    text: str
    html: str


def link(base_url: str, route: str, token: str) -> str:
    """A link into the browser client: `<base>/#/<route>?token=<token>`."""
    return f"{base_url.rstrip('/')}/#/{route}?token={quote(token, safe='')}"


def _html(paragraphs: list[str], action: tuple[str, str] | None = None) -> str:
    body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paragraphs)
    if action is not None:
        label, url = action
        u = html.escape(url, quote=True)
        body += (f'<p><a href="{u}">{html.escape(label)}</a></p>\n'
                 f"<p>If the button does not work, open this address: {html.escape(url)}</p>\n")
    return ("<!doctype html>\n<html><body style=\"font-family: sans-serif\">\n"
            f"{body}<p>— meterchat</p>\n</body></html>\n")


def _text(paragraphs: list[str], url: str | None = None) -> str:
    lines = [*paragraphs]
    if url is not None:
        lines.append(url)
    return "\n\n".join(lines) + "\n\n-- meterchat\n"


def _mail(kind: str, subject: str, paragraphs: list[str],
          action: tuple[str, str] | None = None) -> Message:
    return Message(kind, subject, _text(paragraphs, action[1] if action else None),
                   _html(paragraphs, action))


def verify_email(base_url: str, name: str, token: str, ttl_hours: int) -> Message:
    url = link(base_url, "verify", token)
    return _mail("email_verify", "Confirm your email address", [
        f"Hello {name},",
        "please confirm that this is your email address by opening the link below. "
        f"It is valid for {ttl_hours} hours. You need a confirmed address before your "
        "first withdrawal.",
    ], ("Confirm my email address", url))


def password_reset(base_url: str, token: str, ttl_minutes: int) -> Message:
    url = link(base_url, "reset", token)
    return _mail("password_reset", "Reset your password", [
        "Somebody (we hope you) asked to reset the password of your meterchat account.",
        f"Open the link below to choose a new one; it works once, within {ttl_minutes} "
        "minutes, and logs out every session of the account.",
        "If you did not ask for this, ignore this mail: your password stays as it is.",
    ], ("Choose a new password", url))


def password_changed(how: str) -> Message:
    return _mail("password_changed", "Your password was changed", [
        f"The password of your meterchat account was {how}.",
        "If this was not you, reset your password at once and contact the operator.",
    ])


def new_login(address: str, user_agent: str, at: str) -> Message:
    return _mail("new_login", "New login to your account", [
        f"Your account was logged in to from an address it was not used from before: "
        f"{address}, at {at}.",
        f"Browser or app: {user_agent or 'unknown'}.",
        "If this was not you, change your password and log out every session (Account page).",
    ])


def two_factor_changed(enabled: bool, by_operator: bool = False) -> Message:
    state = "turned on" if enabled else "turned off"
    who = " by the operator" if by_operator else ""
    return _mail("2fa_changed", f"Two-factor authentication {state}", [
        f"Two-factor authentication of your meterchat account was {state}{who}.",
        "If this was not you, reset your password at once and contact the operator.",
    ])


def withdrawal_requested(tokens: str, net_usdt: str, address: str, status: str,
                         hold_until: str | None, base_url: str) -> Message:
    paragraphs = [
        f"A withdrawal of {tokens} tokens ({net_usdt} USDT after fees) to the TRON "
        f"address {address} was requested from your account. Status: {status}."
    ]
    if hold_until is not None:
        paragraphs.append(
            f"It is held until {hold_until} (the first withdrawal to a new address, or one "
            "soon after a password reset or 2FA change, waits). You can cancel it on your "
            "Dashboard before then; the tokens come back to your balance.")
    paragraphs.append("If this was not you, cancel it, change your password and contact "
                      "the operator.")
    return _mail("withdrawal_requested", "Withdrawal requested", paragraphs,
                 ("Open my withdrawals", f"{base_url.rstrip('/')}/#/dashboard"))


def event_alert(event_type: str, events: list[tuple[str, str, str]], base_url: str
                ) -> Message:
    """The operator's alert: every event of one type since the last alert of that type, as
    (event id, time, the event's data as `key: value` text)."""
    n = len(events)
    paragraphs = [f"{n} {event_type} event{'s' if n != 1 else ''} since the last alert of "
                  "this type:"]
    paragraphs += [f"{at}  {event_id}  {data}" for event_id, at, data in events]
    paragraphs.append("The operator page lists every event and its webhook deliveries.")
    return _mail("event_alert", f"[meterchat] {event_type} ({n})", paragraphs,
                 ("Open the operator page", f"{base_url.rstrip('/')}/#/admin"))


def favourite_online(base_url: str, seller_name: str, interval_minutes: float) -> Message:
    url = f"{base_url.rstrip('/')}/#/sellers?favourites=true"
    every = (f"at most once every {interval_minutes:g} minutes per seller"
             if interval_minutes else "each time a favourite comes online")
    return _mail("favourite_online", f"{seller_name} is online now", [
        f"{seller_name}, one of your favourites, just came online on meterchat.",
        f"You get this mail {every} because you asked for it; turn it off on the sellers "
        "page (Favourites: mail me).",
    ], (f"See {seller_name}", url))


def public_base_url(mail_url: str, server_url: str, host: str, port: int) -> str:
    """Where links in mails point: mail.public_url, else server.public_url, else the
    address the server listens on."""
    return (mail_url or server_url or f"http://{host}:{port}").rstrip("/")


def links_base(config: Config) -> str:
    """The base of every link in a mail, from the configuration."""
    s = config.server
    return public_base_url(config.mail.public_url, s.public_url, s.host, s.port)
