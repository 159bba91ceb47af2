"""Monitoring an operator can paste: deploy/prometheus.yml and deploy/meterchat-alerts.yml
pass `promtool check`, each alert fires on its trouble and stays quiet otherwise (`promtool
test rules`), and every metric the rules name is one the real app exports at /metrics,
the hot wallet's balances and the responses by status code among them."""

from __future__ import annotations

import re
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meterchat.chain_ctx import DEVNET, GATEWAY
from tests.conftest import actor, chain_config
from tests.deploy_helpers import DEPLOY, ROOT, tool

pytestmark = pytest.mark.deploy

RULES = DEPLOY / "meterchat-alerts.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=60)


def test_prometheus_config_and_rules_pass_promtool():
    r = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 rule files found" in r.stdout + r.stderr
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr


def test_each_alert_fires_on_its_trouble_and_only_then():
    r = promtool("test", "rules", str(ROOT / "tests" / "prometheus" /
                                      "meterchat-alerts-test.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    tested = set(re.findall(r"alertname: (\w+)", (ROOT / "tests" / "prometheus" /
                                                  "meterchat-alerts-test.yml").read_text()))
    defined = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    assert defined and tested == defined, f"alerts without a test: {defined - tested}"


def exported_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


async def test_every_metric_the_rules_name_is_exported(aiohttp_client, tmp_path):
    from meterchat.app import create_app

    client = await aiohttp_client(create_app(chain_config(tmp_path)))
    assert (await client.get("/api/me")).status == 401
    buyer = await actor(client)
    assert (await buyer.get("/api/me")).status == 200
    assert (await client.get("/api/no-such-thing")).status == 404
    text = await (await client.get("/metrics")).text()
    names = exported_names(text)
    wanted = set(re.findall(r"\bmeterchat_[a-z_]+", RULES.read_text()))
    assert wanted and wanted - names == set(), f"rules name metrics the app lacks: {wanted - names}"

    families = {f.name: f for f in text_string_to_metric_families(text)}
    codes = {s.labels["code"]: s.value for s in families["meterchat_http_responses"].samples
             if s.name.endswith("_total")}
    assert codes["201"] >= 1 and codes["401"] == 1 and codes["404"] == 1 and codes["200"] >= 2

    # The hot wallet's balances are the chain's (here the devnet's hot wallet).
    app = client.app
    address = app[DEVNET].hot_wallet_address
    musdt = await app[GATEWAY].usdt_balance(address)
    sun = await app[GATEWAY].trx_balance_sun(address)
    assert families["meterchat_hot_wallet_usdt"].samples[0].value == musdt / 1_000_000
    assert families["meterchat_hot_wallet_trx"].samples[0].value == sun / 1_000_000
    assert sun > 0
