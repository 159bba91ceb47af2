"""Run a systemd service's ExecStart with the unit's settings that can be had without
systemd, for the deployment test (this machine has no running systemd).

    unshare --mount --propagation private python3 tests/unit_sandbox.py UNIT_FILE

Emulated, from the unit's [Service] section:
- ProtectSystem=strict: every mount read-only but the API file systems, except the paths of
  ReadWritePaths= (and /var/lib/<StateDirectory=>);
- ProtectHome=yes, PrivateTmp=yes: empty tmpfs over /home, /root, /run/user and over /tmp,
  /var/tmp;
- EnvironmentFile= (read as root, like systemd), WorkingDirectory=, UMask=, LimitNOFILE=;
- User=, Group= (and their supplementary groups), NoNewPrivileges=, CapabilityBoundingSet=
  (empty: every capability dropped from the bounding set);
- MemoryDenyWriteExecute=yes, through the kernel's PR_SET_MDWE (Linux 6.3 and later).

Not emulated (systemd-analyze verify and security check them in the unit): the system call
filter, the address families, PrivateUsers, PrivateDevices and the Protect* kernel settings.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import resource
import shlex
import subprocess
import sys
from pathlib import Path

PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
API_FILE_SYSTEMS = ("/proc", "/sys", "/dev")


def parse_service(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = None
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def one(settings: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    values = settings.get(key)
    return values[-1] if values else default


def mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        points.append(point)
    return points


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def protect(settings: dict[str, list[str]]) -> None:
    writable = [p for v in settings.get("ReadWritePaths", []) for p in v.split()]
    for name in settings.get("StateDirectory", []):
        writable += [f"/var/lib/{n}" for n in name.split()]
    if one(settings, "ProtectSystem") == "strict":
        for path in writable:
            mount("--bind", path, path)
        for point in mount_points():
            if point in writable or any(point == a or point.startswith(a + "/")
                                        for a in API_FILE_SYSTEMS):
                continue
            subprocess.run(["mount", "-o", "remount,bind,ro", point], check=False,
                           stderr=subprocess.DEVNULL)
    if one(settings, "ProtectHome") == "yes":
        for path in ("/home", "/root", "/run/user"):
            if os.path.isdir(path):
                mount("-t", "tmpfs", "-o", "ro,mode=0755", "tmpfs", path)
    if one(settings, "PrivateTmp") == "yes":
        for path in ("/tmp", "/var/tmp"):
            if os.path.isdir(path):
                mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", path)


def environment(settings: dict[str, list[str]]) -> dict[str, str]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8"}
    for value in settings.get("EnvironmentFile", []):
        path = Path(value.removeprefix("-"))
        if not path.exists() and value.startswith("-"):
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", ";")) and "=" in line:
                key, val = line.split("=", 1)
                env[key.strip()] = val.strip()
    for value in settings.get("Environment", []):
        for item in shlex.split(value):
            key, val = item.split("=", 1)
            env[key] = val
    return env


def drop_privileges(settings: dict[str, list[str]]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if settings.get("CapabilityBoundingSet") == [""]:
        for cap in range(64):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    user = one(settings, "User")
    if user:
        entry = pwd.getpwnam(user)
        os.initgroups(user, entry.pw_gid)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
        os.environ["HOME"] = entry.pw_dir
    if one(settings, "NoNewPrivileges") == "yes":
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if one(settings, "MemoryDenyWriteExecute") == "yes":
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_MDWE (needs Linux 6.3 or later)")


def main(unit: Path) -> None:
    settings = parse_service(unit)
    env = environment(settings)  # read as root, before anything is hidden
    protect(settings)
    nofile = one(settings, "LimitNOFILE")
    if nofile:
        soft, _, hard = nofile.partition(":")
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(soft), int(hard or soft)))
    umask = one(settings, "UMask")
    if umask:
        os.umask(int(umask, 8))
    drop_privileges(settings)
    os.chdir(one(settings, "WorkingDirectory", "/"))
    argv = shlex.split(one(settings, "ExecStart"))
    env["HOME"] = os.environ.get("HOME", "/")
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
