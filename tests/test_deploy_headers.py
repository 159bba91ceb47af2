"""Security headers have one owner, the app: every response carries each of them once, the
Server header names no version, and the shipped Caddyfile (checked by `caddy validate`, then
run by the real Caddy in front of the real app) adds no second copy of any header."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import subprocess

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from meterchat.app import create_app
from meterchat.web.static import CSP, HSTS
from tests.conftest import make_config
from tests.deploy_helpers import DEPLOY, free_port, tool

pytestmark = pytest.mark.deploy

EVERY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PAGE = {"Content-Security-Policy": CSP,
        "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()"}
PATHS = ("/", "/api/health", "/static/js/app.js", "/api/no-such-thing", "/api/me")


def header_counts(resp: aiohttp.ClientResponse) -> collections.Counter:
    return collections.Counter(name.decode().lower() for name, _ in resp.raw_headers)


def assert_headers(path: str, resp: aiohttp.ClientResponse, hsts: bool, server: str) -> None:
    counts = header_counts(resp)
    twice = sorted(name for name, n in counts.items() if n > 1)
    assert not twice, f"{path}: headers sent more than once: {twice}"
    for name, value in EVERY.items():
        assert resp.headers.get(name) == value, (path, name, resp.headers.get(name))
    if path == "/":
        for name, value in PAGE.items():
            assert resp.headers.get(name) == value, (path, name)
    assert resp.headers.get("Strict-Transport-Security") == (HSTS if hsts else None), path
    assert resp.headers["Server"] == server, path
    assert not re.search(r"\d", resp.headers["Server"]), "the Server header names a version"


@pytest.mark.parametrize("public_url", ["", "https://chat.example.com"])
async def test_the_app_sends_each_security_header_once_and_no_version(aiohttp_client, tmp_path,
                                                                    public_url):
    client = await aiohttp_client(create_app(
        make_config(tmp_path, server={"public_url": public_url})))
    for path in PATHS:
        resp = await client.get(path)
        assert resp.status in (200, 401, 404), path
        assert_headers(path, resp, hsts=bool(public_url), server="meterchat")


def test_the_caddyfile_is_valid(tmp_path):
    caddy = tool("caddy")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [caddy, "validate", "--adapter", "caddyfile", "--config", str(DEPLOY / "Caddyfile")],
        capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Valid configuration" in proc.stdout + proc.stderr


def caddyfile_for_test(app_port: int, caddy_port: int) -> str:
    """The shipped Caddyfile with only its addresses moved: plain HTTP on a loopback port
    (no certificate can be had here) in front of the app's test port."""
    text = (DEPLOY / "Caddyfile").read_text()
    assert "chat.example.com {" in text and "reverse_proxy 127.0.0.1:8080" in text
    text = text.replace("chat.example.com {", f"http://127.0.0.1:{caddy_port} {{")
    text = text.replace("reverse_proxy 127.0.0.1:8080", f"reverse_proxy 127.0.0.1:{app_port}")
    return "{\n\tadmin off\n}\n" + text


@pytest.mark.parametrize("public_url", ["", "https://chat.example.com"])
async def test_through_caddy_no_header_appears_twice(tmp_path, public_url):
    caddy = tool("caddy")
    server = TestServer(create_app(make_config(tmp_path, server={"public_url": public_url})),
                        host="127.0.0.1", port=free_port())
    await server.start_server()
    caddy_port = free_port()
    conf = tmp_path / "Caddyfile"
    conf.write_text(caddyfile_for_test(server.port, caddy_port))
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        caddy, "run", "--adapter", "caddyfile", "--config", str(conf), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{caddy_port}"
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(20):
                while True:
                    try:
                        async with http.get(base + "/api/health") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        pass
                    await asyncio.sleep(0.1)
            for path in PATHS:
                async with http.get(base + path) as resp:
                    assert resp.status in (200, 401, 404), path
                    assert_headers(path, resp, hsts=bool(public_url), server="Caddy")
            async with http.get(base + "/metrics") as resp:
                assert resp.status == 403  # the metrics stay private
    finally:
        proc.terminate()
        await proc.wait()
        await server.close()
