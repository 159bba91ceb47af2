"""schemathesis fuzzes every described HTTP operation against a real server subprocess, as
an anonymous caller, a buyer, a seller and an operator: no 5xx ever, and every error in the
JSON error shape."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.transport.requests import SameHostRedirectsSession

from meterchat.web.openapi import spec

ROOT = Path(__file__).resolve().parent.parent
schema = schemathesis.openapi.from_dict(spec())
PASSWORD = "fuzzing password 1"


def _post(url: str, body: dict, headers: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = tmp / "m.toml"
    cfg.write_text(
        "[server]\nport = 0\npassword_hash_time_cost = 1\npassword_hash_memory_kib = 1024\n"
        "login_attempts_per_account = 100000\nlogin_attempts_per_ip = 100000\n"
        "[devnet]\nport = 0\nblock_time_s = 0.2\nsolidify_depth = 2\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "meterchat.cli", "user", "create", "--config", str(cfg),
                    "--email", "op@example.com", "--role", "admin", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True, env=env)
    # The server's log goes to a file: a full pipe nobody reads would block the server.
    log_path = tmp / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "meterchat.cli", "serve", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    line = ""
    while "serving on" not in line:
        line = proc.stdout.readline()
        assert line, log_path.read_text()
    base = line.split("serving on ")[1].split()[0]
    tokens = {"anonymous": None}
    for role in ("buyer", "seller"):
        email = f"fuzz-{role}@example.com"
        _post(base + "/api/auth/register", {"email": email, "password": PASSWORD, "role": role,
                                            "display_name": role, "adult": True, "terms": True})
        tokens[role] = _post(base + "/api/auth/login",
                             {"email": email, "password": PASSWORD})["token"]
    tokens["admin"] = _post(base + "/api/auth/login",
                            {"email": "op@example.com", "password": PASSWORD})["token"]
    yield base, tokens
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    log.close()
    err = log_path.read_text()
    assert proc.returncode == 0, err[-2000:]
    # As log events, not substrings: a fuzzed path may well read "unhandled error".
    events = []
    for line in err.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            assert "Traceback" not in line, err[-4000:]
    assert not [e for e in events if isinstance(e, dict) and (
        e.get("event") == "unhandled error"
        or (e.get("event") == "request" and e.get("status", 0) >= 500))]


@pytest.fixture(scope="module")
def sessions(server) -> Iterator[dict[str, SameHostRedirectsSession]]:
    """One HTTP session per caller, its connections kept alive across cases (a new session
    and connection per request cost more than the server's answer). It keeps no cookies: a
    session cookie set by a fuzzed login would make the anonymous caller someone; nor does it
    read proxies from the environment, for every request."""
    out = {}
    for role in server[1]:
        session = SameHostRedirectsSession()
        session.trust_env = False
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        out[role] = session
    yield out
    for session in out.values():
        session.close()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_errors_have_the_json_shape(case, server, sessions):
    base, tokens = server
    for role, token in tokens.items():
        if case.path == "/api/auth/logout" and token is not None:
            continue  # would revoke the shared fuzzing sessions
        if case.path == "/api/admin/users/{id}/ban" and role == "admin":
            continue  # a ban would revoke them too (bans are tested in test_operator.py)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = case.call(base_url=base, headers=headers, session=sessions[role])
        assert not sessions[role].cookies, "a cookie was kept"  # each call starts from none
        assert response.status_code < 500, (role, case.method, case.path, response.text)
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"}, body
            assert isinstance(body["error"]["code"], str) and body["error"]["code"]
            assert isinstance(body["error"]["message"], str) and body["error"]["message"]
