"""Start-up: `meterchat serve` from the moment its process is spawned to the first healthy
GET /api/health, on an existing database (the devnet defaults, a temporary directory).

The first start creates the database and the devnet chain and is not counted; then the
server is started and stopped (SIGTERM) `--runs` times, each time polling /api/health every
10 ms until it answers 200 with `"ok": true`. Prints min, median and max, and the time to the
"serving on" line alone, and the CPU time the server's process had used when it first answered
healthy (user + system, from /proc): on a machine busy with other work the wall time waits
for a core, the CPU time much less so.

The server runs as an installed one does, with its modules' bytecode cached: pip compiles
the wheel's modules when it installs them, so PYTHONDONTWRITEBYTECODE (which would make a
checkout recompile every module at every start) is dropped for the server's process; the
uncounted first start writes the cache.

    .venv/bin/python bench/startup.py --runs 7

Bounded: at most 50 runs, each given 30 s to become healthy.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_RUNS = 50
HEALTH_TIMEOUT_S = 30.0


def write_config(workdir: Path) -> Path:
    cfg = workdir / "meterchat.toml"
    cfg.write_text('[server]\nport = 0\n[database]\npath = "db.sqlite3"\n'
                   '[devnet]\nport = 0\npath = "devnet.sqlite3"\n')
    return cfg


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/health", timeout=1) as resp:
            return resp.status == 200 and b'"ok": true' in resp.read()
    except OSError:
        return False


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (all its threads); NaN off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(cfg: Path, workdir: Path) -> tuple[float, float, float]:
    """(seconds to the "serving on" line, seconds to a healthy /api/health, the server's CPU
    seconds then)."""
    out_path = workdir / "server.out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    with out_path.open("w") as out, (workdir / "server.log").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meterchat.cli", "serve", "--config", str(cfg)],
            cwd=workdir, stdout=out, stderr=err, env=env)
    try:
        url = ""
        serving_s = float("nan")
        deadline = t0 + HEALTH_TIMEOUT_S
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: {(workdir / 'server.log').read_text()}")
            if not url:
                text = out_path.read_text()
                if "serving on " in text:
                    url = text.split("serving on ")[1].split()[0]
                    serving_s = time.perf_counter() - t0
            if url and healthy(url):
                return serving_s, time.perf_counter() - t0, cpu_s(proc.pid)
            time.sleep(0.01)
        raise RuntimeError("the server did not become healthy")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(runs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="meterchat-startup-") as tmp:
        workdir = Path(tmp)
        cfg = write_config(workdir)
        first = one_start(cfg, workdir)  # creates the database and the devnet chain
        serving, health, cpu = [], [], []
        for _ in range(runs):
            s, h, c = one_start(cfg, workdir)
            serving.append(s)
            health.append(h)
            cpu.append(c)
    return {"first_s": first[1], "serving": serving, "health": health, "cpu": cpu}


def summary(values: list[float]) -> str:
    return (f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, "
            f"max {max(values):.2f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--target", type=float, default=1.0,
                   help="seconds the median start may take (exit 1 above it)")
    args = p.parse_args(argv)
    if not 1 <= args.runs <= MAX_RUNS:
        raise SystemExit(f"1 to {MAX_RUNS} runs")
    r = measure(args.runs)
    print(f"meterchat serve start-up on an existing database ({args.runs} runs, {os.cpu_count()}"
          f" cores, load average {os.getloadavg()[0]:.2f}): healthy /api/health "
          f"{summary(r['health'])}; 'serving on' line {summary(r['serving'])}; "
          f"server CPU time at health {summary(r['cpu'])}; "
          f"first start (new database and chain) {r['first_s']:.2f} s", flush=True)
    return 0 if statistics.median(r["health"]) < args.target else 1


if __name__ == "__main__":
    sys.exit(main())
