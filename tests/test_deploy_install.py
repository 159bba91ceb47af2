"""The README's deployment steps, done for real into a temporary root with a throwaway
system user: deploy/install.sh installs (and installs again without harm, and upgrades with
a backup first); the server runs as that user under the unit's settings that can be had
without systemd (tests/unit_sandbox.py: everything read-only but the state directory, no
capabilities, the unit's umask and file limit); it serves health and a sign-up; the
database is 0600 and the state directory 0700, both the service user's; a backup and a
restore are run as the service user and the restore passes audit; the installed units pass
`systemd-analyze verify` and `security` (exposure at most 3.0). Everything is removed
after, the user too."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.deploy_helpers import DEPLOY, ROOT, free_ports, need_root, tool, wait_http

pytestmark = [pytest.mark.deploy, pytest.mark.slow]

SANDBOX = Path(__file__).with_name("unit_sandbox.py")
DOMAIN = "chat.test"
MAX_EXPOSURE = 3.0


class Install:
    """One temporary root and one throwaway service user."""

    def __init__(self) -> None:
        need_root()
        for name in ("useradd", "unshare", "systemd-analyze", "setpriv"):
            tool(name)
        # Not under /tmp: the unit's PrivateTmp= hides it from the service.
        self.root = Path(tempfile.mkdtemp(prefix="meterchat-deploytest-", dir="/srv"))
        self.root.chmod(0o755)
        self.user = f"mcdt{os.getpid() % 100000}"
        self.etc = self.root / "etc/meterchat"
        self.config = self.etc / "meterchat.toml"
        self.state = self.root / "var/lib/meterchat"
        self.opt = self.root / "opt/meterchat"
        self.cli = self.root / "usr/local/bin/meterchat"
        self.unit = self.root / "etc/systemd/system/meterchat.service"
        self.log = self.root.with_name(self.root.name + ".log")
        self.proc: subprocess.Popen | None = None
        self.logf = None

    def install(self, *extra: str) -> subprocess.CompletedProcess:
        r = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--root", str(self.root),
                            "--user", self.user, "--no-packages", "--domain", DOMAIN, *extra],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    def meterchat(self, *args: str, input: str | None = None, check: bool = True):
        """The README's `meterchat ...`, typed by root."""
        r = subprocess.run([str(self.cli), *args], input=input, capture_output=True,
                           text=True, timeout=120)
        if check:
            assert r.returncode == 0, r.stdout + r.stderr
        return r

    def start(self) -> str:
        self.logf = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "/usr/bin/python3",
             str(SANDBOX), str(self.unit)], stdout=self.logf, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{self.port}"
        health = json.loads(wait_http(url + "/api/health", timeout_s=60, proc=self.proc))
        assert health["ok"] is True and health["database"] == "ok", health
        return url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=40)
            assert code == 0, self.log.read_text()[-3000:]
        self.proc = None
        self._close_log()

    def _close_log(self) -> None:
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()
        subprocess.run(["userdel", self.user], capture_output=True)
        subprocess.run(["groupdel", self.user], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        self.log.unlink(missing_ok=True)


@pytest.fixture
def deployment():
    d = Install()
    try:
        yield d
    finally:
        d.remove()
    assert not d.root.exists()
    assert subprocess.run(["getent", "passwd", d.user], capture_output=True).returncode == 2


def set_key(text: str, section: str, key: str, value: str) -> str:
    """What an operator does in an editor: change one key's value in its section."""
    out, current, done = [], None, False
    for line in text.splitlines():
        header = re.match(r"^\[(\w+)\]", line)
        if header:
            current = header.group(1)
        m = re.match(rf"^{key}(\s*=\s*)(\"[^\"]*\"|\S+)(.*)$", line)
        if m and current == section:
            line, done = f"{key}{m.group(1)}{value}{m.group(3)}", True
        out.append(line)
    assert done, f"{section}.{key} not in the config"
    return "\n".join(out) + "\n"


def mode_owner(path: Path) -> tuple[str, str, str]:
    st = path.stat()
    return (oct(stat.S_IMODE(st.st_mode)), pwd.getpwuid(st.st_uid).pw_name,
            grp.getgrgid(st.st_gid).gr_name)


def post(url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token
                                             else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def verify(unit: Path) -> None:
    r = subprocess.run([tool("systemd-analyze"), "verify", str(unit)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def exposure(unit: Path) -> float:
    """`systemd-analyze security`'s overall exposure of a unit file (0 safe .. 10 unsafe)."""
    r = subprocess.run([tool("systemd-analyze"), "security", "--offline=yes", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    return float(m.group(1))


def upgraded_wheel(tmp_path: Path) -> Path:
    """A wheel of this checkout under a newer version number, as a release would be."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "build", "*.egg-info", "__pycache__", ".pytest_cache",
        ".ruff_cache", ".hypothesis", "artifacts"))
    pyproject = src / "pyproject.toml"
    text = pyproject.read_text()
    version = re.search(r'^version = "([^"]+)"', text, re.M).group(1)
    pyproject.write_text(text.replace(f'version = "{version}"',
                                      f'version = "{version}.post1"', 1))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--wheel-dir", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return next((tmp_path / "dist").glob("meterchat-*.whl"))


def test_the_shipped_unit_is_hardened():
    unit = DEPLOY / "meterchat.service"
    level = exposure(unit)
    assert level <= MAX_EXPOSURE, f"systemd-analyze security rates the unit {level}"
    text = unit.read_text()
    for setting in ("UMask=0077", "Restart=on-failure", "StateDirectory=meterchat",
                    "StateDirectoryMode=0700", "ProtectSystem=strict", "NoNewPrivileges=yes",
                    "EnvironmentFile=/etc/meterchat/secrets.env", "CapabilityBoundingSet=\n"):
        assert setting.replace("\\n", "\n") in text + "\n", setting
    assert re.search(r"^LimitNOFILE=\d+$", text, re.M)


def test_the_readme_deployment_on_a_fresh_host(deployment, tmp_path):
    d = deployment
    # Step 3: the installer.
    first = d.install()
    assert "writing" in first.stdout and "is the current version" in first.stdout

    entry = pwd.getpwnam(d.user)
    assert entry.pw_shell == "/usr/sbin/nologin" and entry.pw_uid < 1000
    assert mode_owner(d.etc) == ("0o750", "root", d.user)
    assert mode_owner(d.config) == ("0o640", "root", d.user)
    assert mode_owner(d.etc / "secrets.env") == ("0o600", "root", "root")
    assert mode_owner(d.state) == ("0o700", d.user, d.user)
    assert mode_owner(d.opt / "current" / "bin" / "meterchat")[1] == "root"
    secrets = (d.etc / "secrets.env").read_text()
    turn_secret = re.search(r"^TURN_SECRET=(\w{64})$", secrets, re.M).group(1)
    # The TURN secret is the one coturn's config got; the config names turns: URLs.
    assert f"static-auth-secret={turn_secret}" in (d.root / "etc/turnserver.conf").read_text()
    config_text = d.config.read_text()
    assert f'"turns:{DOMAIN}:5349?transport=tcp"' in config_text
    assert f'public_url = "https://{DOMAIN}"' in config_text
    # Behind the local Caddy the client address comes from its X-Forwarded-For.
    assert 'trusted_proxies = ["127.0.0.1", "::1"]' in config_text
    assert f"{DOMAIN} {{" in (d.root / "etc/caddy/Caddyfile").read_text()
    # Every path of the config is in the state directory.
    check = subprocess.run([str(d.opt / "current/bin/python"), str(DEPLOY / "render_config.py"),
                            "check", str(d.config), str(d.state)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    # The installed units: systemd accepts them (their programs exist), the service's
    # exposure is low, its file limit follows the config's max_ws_connections.
    for name in ("meterchat.service", "meterchat-backup.service", "meterchat-backup.timer",
                 "meterchat-turn-cert.service", "meterchat-turn-cert.timer"):
        verify(d.root / "etc/systemd/system" / name)
    assert exposure(d.unit) <= MAX_EXPOSURE
    # Debian's coturn unit with the installed drop-in (sections of the same name merge).
    tool("turnserver")
    coturn = tmp_path / "coturn.service"
    coturn.write_text(Path("/lib/systemd/system/coturn.service").read_text() + "\n"
                      + (d.root / "etc/systemd/system/coturn.service.d/meterchat.conf")
                      .read_text())
    verify(coturn)
    assert f"ExecStartPre={d.opt}/bin/meterchat-turn-cert check" in coturn.read_text()
    assert f"LimitNOFILE={2 * 4000 + 1024}" in d.unit.read_text()

    # The operator edits the config (here: ports free on this machine).
    port, devnet_port = free_ports(2)
    d.port = port
    text = set_key(config_text, "server", "port", str(port))
    text = set_key(text, "devnet", "port", str(devnet_port))
    text = set_key(text, "devnet", "block_time_s", "0.5")
    d.config.write_text(text)

    # Step 4: the operator account, as root; the database is the service user's, 0600.
    r = d.meterchat("user", "create", "--email", "op@example.com", "--role", "admin",
                    "--password-stdin", input="operator password 1\n")
    assert json.loads(r.stdout)["user"]["role"] == "admin"
    db = d.state / "data" / "meterchat.sqlite3"
    assert mode_owner(db) == ("0o600", d.user, d.user)
    assert mode_owner(db.parent) == ("0o700", d.user, d.user)

    # Step 5: the service starts, serves health, the page and a sign-up.
    url = d.start()
    with urllib.request.urlopen(url + "/", timeout=10) as resp:  # noqa: S310 - loopback
        assert b"<html" in resp.read().lower()
        assert resp.headers["Server"] == "meterchat"
    status, body = post(url + "/api/auth/register", {
        "email": "buyer@example.com", "password": "correct horse battery", "role": "buyer",
        "display_name": "buyer", "adult": True, "terms": True})
    assert status == 201, body
    status, body = post(url + "/api/auth/login", {"email": "op@example.com",
                                                  "password": "operator password 1"})
    assert status == 200 and body["user"]["role"] == "admin", body
    # The service's limits are the unit's; it cannot write its program or its config.
    limits = Path(f"/proc/{d.proc.pid}/limits").read_text()
    assert re.search(rf"Max open files\s+{2 * 4000 + 1024}\s", limits)
    status_text = Path(f"/proc/{d.proc.pid}/status").read_text()
    assert re.search(rf"^Uid:\s+{entry.pw_uid}\s", status_text, re.M)
    assert re.search(r"^CapBnd:\s+0+$", status_text, re.M)
    assert mode_owner(d.state / "data" / "devnet.sqlite3")[:2] == ("0o600", d.user)
    for path in (d.config, d.opt / "current" / "bin" / "meterchat"):
        r = subprocess.run(["setpriv", f"--reuid={d.user}", f"--regid={d.user}",
                            "--init-groups", "sh", "-c", f"echo x >> {path}"],
                           capture_output=True, text=True)
        assert r.returncode != 0, f"the service user can write {path}"

    # Backups: one by hand (root, as the README says) and the timer's job, as the user.
    manual = d.state / "backups" / "manual.sqlite3"
    d.meterchat("backup", str(manual))
    assert mode_owner(manual) == ("0o600", d.user, d.user)
    r = subprocess.run(["setpriv", f"--reuid={d.user}", f"--regid={d.user}", "--init-groups",
                        str(d.opt / "bin" / "meterchat-backup")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    hourly = list((d.state / "backups").glob("meterchat-*.sqlite3"))
    assert len(hourly) == 1 and mode_owner(hourly[0])[:2] == ("0o600", d.user)
    d.stop()

    # Restore, as the README says: the old files moved away, `meterchat restore` (audit ok).
    replaced = d.state / "replaced"
    replaced.mkdir()
    for f in db.parent.glob("meterchat.sqlite3*"):
        f.rename(replaced / f.name)
    r = d.meterchat("restore", str(manual))
    assert "audit ok" in r.stdout, r.stdout + r.stderr
    assert mode_owner(db) == ("0o600", d.user, d.user)
    url = d.start()
    status, body = post(url + "/api/auth/login", {"email": "buyer@example.com",
                                                  "password": "correct horse battery"})
    assert status == 200, body
    d.stop()
    assert d.meterchat("audit").returncode == 0

    # The installer again: nothing changes, nothing is backed up, the edits stay.
    before = {p: p.read_bytes() for p in (d.config, d.etc / "secrets.env", d.unit)}
    current = os.readlink(d.opt / "current")
    again = d.install()
    assert "installed already" in again.stdout and "backing up" not in again.stdout
    assert {p: p.read_bytes() for p in before} == before
    assert os.readlink(d.opt / "current") == current
    assert not list((d.state / "backups").glob("pre-upgrade-*"))

    # An upgrade: a backup by the old version first, then the new one is current and
    # serves the same data (its migrations run at start).
    upgrade = d.install("--wheel", str(upgraded_wheel(tmp_path)))
    assert "backing up the database before the upgrade" in upgrade.stdout
    pre = list((d.state / "backups").glob("pre-upgrade-*.sqlite3"))
    assert len(pre) == 1 and mode_owner(pre[0])[:2] == ("0o600", d.user)
    assert ".post1-" in os.readlink(d.opt / "current")
    assert os.readlink(d.opt / "previous") == current
    # The new venv started from the old one's packages; each venv has its own meterchat, so
    # going back to the previous one still runs the previous version.
    versions = {}
    for name in ("current", "previous"):
        # -I: the checkout (the working directory) has metadata of its own.
        r = subprocess.run([str(d.opt / name / "bin/python"), "-I", "-c",
                            "import importlib.metadata as m; print(m.version('meterchat'))"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        versions[name] = r.stdout.strip()
    assert versions["current"] == versions["previous"] + ".post1", versions
    url = d.start()
    status, body = post(url + "/api/auth/login", {"email": "buyer@example.com",
                                                  "password": "correct horse battery"})
    assert status == 200, body
    d.stop()
