"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the mail tests
and the browser tests."""

from __future__ import annotations

import email
import email.policy
import socket
import time
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """The aiosmtpd handler: every mail received, parsed; RCPT to a refused address is 550."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def wait_for(self, address: str, count: int = 1, timeout_s: float = 10.0
                 ) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.to(address)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{count} mail(s) to {address} not received; got "
                             f"{[m['Subject'] for m in self.to(address)]}")


class Login:
    """An aiosmtpd authenticator that takes one user and password (and notes each try)."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()
        self.tries: list[tuple[bytes, bytes]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        self.tries.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (self.user, self.password)
        return AuthResult(success=ok, handled=False)


def self_signed_cert(directory) -> tuple[str, str]:
    """(cert, key) files of a certificate for 127.0.0.1, made with the openssl command."""
    import subprocess

    cert, key = str(directory / "smtp-cert.pem"), str(directory / "smtp-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class SmtpServer:
    def __init__(self, port: int | None = None, login: Login | None = None,
                 tls: str = "none", cert: tuple[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.inbox = Inbox()
        self.login = login
        self.tls = tls  # none | starttls (required) | tls (implicit)
        self.cert = cert
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        extra: dict = {}
        if self.tls != "none":
            import ssl

            assert self.cert is not None
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*self.cert)
            if self.tls == "starttls":
                extra.update(tls_context=ctx, require_starttls=True)
            else:
                extra.update(ssl_context=ctx)
        if self.login is not None:
            # aiosmtpd does not count implicit TLS as TLS for AUTH: required only on STARTTLS.
            extra.update(authenticator=self.login, auth_require_tls=self.tls == "starttls")
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port,
                                     **extra)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def mail_config(self) -> dict:
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_tls": "none",
                "send_interval_s": 0.05, "public_url": "https://chat.example.com",
                "from": "meterchat <no-reply@chat.example.com>"}


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def link_in(msg: EmailMessage, route: str) -> str:
    """The token of the first #/<route>?token= link in a mail's text part."""
    text = text_part(msg)
    marker = f"/#/{route}?token="
    start = text.index(marker) + len(marker)
    end = start
    while end < len(text) and not text[end].isspace():
        end += 1
    from urllib.parse import unquote
    return unquote(text[start:end])
