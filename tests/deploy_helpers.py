"""Helpers of the deployment tests: the real tools of Debian's packages (caddy, coturn's
turnserver, promtool, systemd-analyze), free loopback ports, waiting for a server.

The tools are installed by .ci/run; a test that needs one fails when it is missing (it
never skips), saying which package brings it."""

from __future__ import annotations

import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

PACKAGE_OF = {
    "caddy": "caddy",
    "turnserver": "coturn",
    "turnutils_uclient": "coturn",
    "promtool": "prometheus",
    "systemd-analyze": "systemd",
    "openssl": "openssl",
    "unshare": "util-linux",
    "runuser": "util-linux",
    "setpriv": "util-linux",
    "useradd": "passwd",
}


def tool(name: str) -> str:
    """The path of a tool; the test fails (not skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install {PACKAGE_OF.get(name, name)} "
                    "(.ci/run installs it)")
    return path


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this deployment test creates a system user and runs the installer: "
                    "run it as root (CI does)")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """n distinct ports free for both TCP and UDP on 127.0.0.1."""
    out: list[int] = []
    while len(out) < n:
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        if port not in out:
            out.append(port)
    return out


def wait_http(url: str, timeout_s: float = 30.0, proc=None) -> bytes:
    """GET url until it answers 2xx; fails with the last error (or the process's exit)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
                return resp.read()
        except (urllib.error.URLError, OSError) as exc:
            last = exc
            time.sleep(0.2)
    pytest.fail(f"no answer from {url} in {timeout_s} s: {last}")


def wait_port(port: int, timeout_s: float = 15.0, proc=None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")
