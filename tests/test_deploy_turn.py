"""The shipped coturn config, run by the real turnserver (as Debian's unit runs it, as the
user turnserver) with a test certificate made with openssl: the credentials GET /api/ice
hands out allocate a relay over every URL it lists (turn: UDP and TCP, turns: TLS), as
aiortc gathers them; expired or tampered credentials are refused; peers in private ranges
are refused while a public one is allowed; the start-up check refuses a missing, expired or
mismatched certificate; and a renewed certificate copied from Caddy's store is served after
a reload (SIGUSR2), without a restart."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from meterchat.app import create_app
from meterchat.calls.ice import turn_credentials
from tests.conftest import actor, make_config
from tests.deploy_helpers import DEPLOY, free_ports, tool, wait_port

pytestmark = pytest.mark.deploy

SHIPPED = DEPLOY / "turnserver.conf"
CERT_TOOL = DEPLOY / "meterchat-turn-cert"
TURN_NAME = "turn.test"
SECRET = "a-test-secret-that-is-long-enough"


def openssl_cert(dir: Path, stem: str, cn: str, days: int = 2) -> tuple[Path, Path]:
    """A self-signed certificate for the TURN name and 127.0.0.1, made with openssl."""
    cert, key = dir / f"{stem}.crt", dir / f"{stem}.key"
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", str(days), "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=DNS:{TURN_NAME},IP:127.0.0.1", "-keyout", str(key),
         "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


def expired_cert(dir: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TURN_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=3))
            .not_valid_after(now - datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (dir / "old.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (dir / "old.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return dir / "old.crt", dir / "old.key"


def shipped_config_for_test(work: Path, ports: dict[str, int]) -> Path:
    """The shipped file with only what a test on loopback must change: ports, addresses,
    the secret, the host name and where the certificate is. Every other line is kept."""
    replace = {
        "listening-port": str(ports["plain"]),
        "tls-listening-port": str(ports["tls"]),
        "min-port": str(ports["relay_min"]),
        "max-port": str(ports["relay_max"]),
        "static-auth-secret": SECRET,
        "realm": TURN_NAME,
        "server-name": TURN_NAME,
        "cert": str(work / "coturn-tls" / "fullchain.pem"),
        "pkey": str(work / "coturn-tls" / "privkey.pem"),
    }
    seen = set()
    out = []
    for line in SHIPPED.read_text().splitlines():
        name = line.split("=", 1)[0].strip()
        if "=" in line and not line.startswith("#") and name in replace:
            line = f"{name}={replace[name]}"
            seen.add(name)
        out.append(line)
    assert seen == set(replace), f"the shipped config lacks {set(replace) - seen}"
    out += ["listening-ip=127.0.0.1", "relay-ip=127.0.0.1"]
    conf = work / "turnserver.conf"
    conf.write_text("\n".join(out) + "\n")
    conf.chmod(0o644)
    return conf


AS_TURNSERVER = ["setpriv", "--reuid=turnserver", "--regid=turnserver", "--init-groups"]


def cert_check(conf: Path) -> subprocess.CompletedProcess:
    """The coturn unit's ExecStartPre, run as coturn's user."""
    return subprocess.run([*AS_TURNSERVER, "sh", str(CERT_TOOL), "check", "--config",
                           str(conf)],
                          capture_output=True, text=True, timeout=30)


def cert_copy(conf: Path, caddy_store: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(CERT_TOOL), "--config", str(conf), "--caddy-certs",
                           str(caddy_store), "--no-reload"],
                          capture_output=True, text=True, timeout=30)


def put_in_caddy_store(store: Path, cert: Path, key: Path) -> None:
    """Where Caddy 2.6 keeps a certificate it obtained: <issuer>/<name>/<name>.crt|.key."""
    site = store / "acme-v02.api.letsencrypt.org-directory" / TURN_NAME
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(cert, site / f"{TURN_NAME}.crt")
    shutil.copy(key, site / f"{TURN_NAME}.key")
    for f in site.iterdir():
        f.chmod(0o600)


def served_cert_subject(port: int) -> str:
    """The common name of the certificate coturn's TLS listener serves right now."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


@pytest.fixture
def work():
    tool("turnserver")
    # Readable by coturn's user, as /etc is (pytest's tmp_path is private to root).
    path = Path(tempfile.mkdtemp(prefix="meterchat-turn-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def new_ports() -> dict[str, int]:
    plain, tls, relay_min = free_ports(3)
    return {"plain": plain, "tls": tls, "relay_min": relay_min, "relay_max": relay_min + 20}


def test_coturn_gets_only_a_certificate_it_can_use(work):
    """The start-up check (the unit's ExecStartPre) and the copy from Caddy's store refuse,
    in words, a missing, expired or mismatched certificate; the one they accept is
    installed with the key readable by coturn's group only."""
    conf = shipped_config_for_test(work, new_ports())
    r = cert_check(conf)
    assert r.returncode == 1 and "cannot read the certificate" in r.stderr, r.stderr
    store = work / "caddy-certificates"
    r = cert_copy(conf, store)
    assert r.returncode == 1 and f"no certificate for {TURN_NAME}" in r.stderr, r.stderr
    old_cert, old_key = expired_cert(work)
    put_in_caddy_store(store, old_cert, old_key)
    r = cert_copy(conf, store)
    assert r.returncode == 1 and "has expired" in r.stderr, r.stderr
    cert, key = openssl_cert(work, "first", "first")
    other_cert, _ = openssl_cert(work, "other", "other")
    put_in_caddy_store(store, other_cert, key)
    r = cert_copy(conf, store)
    assert r.returncode == 1 and "does not match" in r.stderr, r.stderr

    put_in_caddy_store(store, cert, key)
    r = cert_copy(conf, store)
    assert r.returncode == 0 and "installed the certificate" in r.stdout, r.stderr
    st = (work / "coturn-tls" / "privkey.pem").stat()
    turn_gid = int(subprocess.run(["getent", "group", "turnserver"], text=True,
                                  capture_output=True, check=True).stdout.split(":")[2])
    assert (oct(st.st_mode & 0o777), st.st_uid, st.st_gid) == ("0o640", 0, turn_gid)
    assert cert_check(conf).returncode == 0
    assert "is current" in cert_copy(conf, store).stdout


class Coturn:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.ports = new_ports()
        self.conf = shipped_config_for_test(work, self.ports)
        self.store = work / "caddy-certificates"
        self.cert, key = openssl_cert(work, "first", "first")
        put_in_caddy_store(self.store, self.cert, key)
        r = cert_copy(self.conf, self.store)
        assert r.returncode == 0, r.stderr
        assert cert_check(self.conf).returncode == 0
        self.proc = subprocess.Popen(
            [*AS_TURNSERVER, tool("turnserver"), "-c", str(self.conf), "--pidfile="],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_port(self.ports["plain"], proc=self.proc)
        wait_port(self.ports["tls"], proc=self.proc)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            return self.proc.communicate(timeout=10)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()[0].decode(errors="replace")


@pytest.fixture
def coturn(work):
    server = Coturn(work)
    yield server
    server.stop()


async def gather_relay(ice_server: dict, url: str) -> list[str]:
    """aiortc's ICE gathering with one TURN URL: the relay candidates it found."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    pc = RTCPeerConnection(RTCConfiguration(
        iceServers=[RTCIceServer(urls=url, username=ice_server["username"],
                                 credential=ice_server["credential"])],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY))
    try:
        pc.createDataChannel("probe")
        await pc.setLocalDescription(await pc.createOffer())
        return [line for line in pc.localDescription.sdp.splitlines()
                if line.startswith("a=candidate") and " typ relay" in line]
    finally:
        await pc.close()


async def allocate(server: tuple[str, int], username: str, password: str):
    """A TURN allocation over UDP with aioice; its transport (close it)."""
    import asyncio

    from aioice import turn

    transport, _ = await turn.create_turn_endpoint(asyncio.DatagramProtocol, server, username,
                                                   password)
    return transport


async def refused_code(coro) -> int:
    from aioice import stun

    with pytest.raises(stun.TransactionFailed) as failed:
        await coro
    return failed.value.response.attributes["ERROR-CODE"][0]


async def test_shipped_coturn_relays_with_api_ice_credentials(coturn, aiohttp_client, tmp_path,
                                                             monkeypatch):
    plain, tls = coturn.ports["plain"], coturn.ports["tls"]
    # The app hands out credentials for the three kinds of URL the README configures.
    urls = [f"turn:127.0.0.1:{plain}?transport=udp", f"turn:127.0.0.1:{plain}?transport=tcp",
            f"turns:127.0.0.1:{tls}?transport=tcp"]
    monkeypatch.setenv("TURN_SECRET", SECRET)
    client = await aiohttp_client(create_app(make_config(tmp_path, ice={"turn_urls": urls})))
    buyer = await actor(client)
    resp = await buyer.get("/api/ice")
    assert resp.status == 200
    servers = (await resp.json())["ice_servers"]
    turn_entry = next(s for s in servers if "username" in s)
    assert turn_entry["urls"] == urls
    expiry, user_id = turn_entry["username"].split(":")
    assert user_id == str(buyer.id) and int(expiry) > time.time()

    # aiortc, forced through TURN as a browser can be, gathers a relay candidate over each
    # URL (over turns: it checks the server's certificate against the test CA).
    monkeypatch.setenv("SSL_CERT_FILE", str(coturn.cert))
    for url in urls:
        relays = await gather_relay(turn_entry, url)
        assert relays, f"no relay candidate over {url}"
        port = int(relays[0].split()[5])
        assert coturn.ports["relay_min"] <= port <= coturn.ports["relay_max"], relays[0]

    # The same credentials with aioice: peers in private ranges are refused (403) while a
    # public one is allowed (a permission on the server only: nothing is sent to a peer).
    username, password = turn_entry["username"], turn_entry["credential"]
    relay = await allocate(("127.0.0.1", plain), username, password)
    inner = relay._TurnTransport__inner_protocol
    try:
        channel = 0x4000
        for peer in ("10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                     "100.64.0.1", "127.0.0.1"):
            assert await refused_code(inner.channel_bind(channel, (peer, 9))) == 403, peer
            channel += 1
        await inner.channel_bind(channel, ("198.51.100.7", 9))
    finally:
        relay.close()

    # Expired and tampered credentials are refused (401).
    now = int(time.time())
    expired = turn_credentials(SECRET, buyer.id, -60, now)
    assert await refused_code(allocate(("127.0.0.1", plain), *expired)) == 401
    tampered = password[:-4] + ("AAA=" if not password.endswith("AAA=") else "BBB=")
    assert await refused_code(allocate(("127.0.0.1", plain), username, tampered)) == 401
    other_user = f"{expiry}:{buyer.id}0"
    assert await refused_code(allocate(("127.0.0.1", plain), other_user, password)) == 401
    wrong_secret = turn_credentials("another secret", buyer.id, 600, now)
    assert await refused_code(allocate(("127.0.0.1", plain), *wrong_secret)) == 401


def test_a_renewed_certificate_is_served_after_a_reload(coturn):
    """Caddy's renewed certificate is copied, and coturn, told to reload (the unit's
    ExecReload sends SIGUSR2), serves it without a restart."""
    tls = coturn.ports["tls"]
    assert served_cert_subject(tls) == "first"
    new_cert, new_key = openssl_cert(coturn.work, "renewed", "renewed")
    put_in_caddy_store(coturn.store, new_cert, new_key)
    r = cert_copy(coturn.conf, coturn.store)
    assert r.returncode == 0 and "installed the certificate" in r.stdout, r.stderr
    os.kill(coturn.proc.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while served_cert_subject(tls) != "renewed":
        assert time.monotonic() < deadline, "coturn did not reload its certificate"
        time.sleep(0.2)
    assert coturn.proc.poll() is None
    assert "Reloading TLS certificates" in coturn.stop()


def test_denied_peers_cover_private_and_link_local_ranges_ipv4_and_ipv6():
    """Every range that must never be relayed to is inside the config's denied-peer-ip
    list, and no entry starts at "::", which coturn 4.6 reads as every address."""
    ranges = []
    for line in SHIPPED.read_text().splitlines():
        m = re.fullmatch(r"denied-peer-ip=(\S+)", line.strip())
        if not m:
            continue
        text = m.group(1)
        lo, _, hi = text.partition("-")
        assert ipaddress.ip_address(lo) != ipaddress.ip_address("::"), text
        ranges.append((ipaddress.ip_address(lo), ipaddress.ip_address(hi or lo)))

    def denied(net: str) -> bool:
        n = ipaddress.ip_network(net)
        return any(lo.version == n.version and lo <= n[0] and n[-1] <= hi for lo, hi in ranges)

    must = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
            "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
            "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "fc00::/7", "fe80::/10", "ff00::/8"]
    assert [n for n in must if not denied(n)] == []
    for public in ("198.51.100.7", "8.8.8.8", "2606:4700::1111"):
        assert not denied(public), public
