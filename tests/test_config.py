"""Config: defaults, validation naming the key, relative paths, secrets, and the example
file listing every key."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from meterchat.core.config import (
    ConfigError,
    Secret,
    describe_keys,
    describe_webhook_keys,
    load_config,
)

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "meterchat.toml"
    p.write_text(text)
    return p


def test_no_file_means_defaults():
    cfg = load_config(None)
    assert cfg.chain.network == "devnet"
    assert cfg.server.port == 8080
    assert cfg.billing.commission_percent == Decimal(25)
    assert cfg.withdrawals.fee_musdt == 500_000
    assert cfg.withdrawals.network_fee_musdt == 1_000_000
    assert cfg.database.path == Path.cwd() / "data" / "meterchat.sqlite3"


def test_empty_file_is_valid_and_paths_are_relative_to_it(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    assert cfg.database.path == tmp_path / "data" / "meterchat.sqlite3"
    cfg = load_config(write(tmp_path, '[database]\npath = "db/x.sqlite3"\n'))
    assert cfg.database.path == tmp_path / "db" / "x.sqlite3"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[serve]\nport = 1\n", "[serve]"),
        ('[server]\nport = "80"\n', "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ('[chain]\nnetwork = "testnet"\n', "chain.network"),
        ("[billing]\ncommission_percent = 101\n", "billing.commission_percent"),
        ("[billing]\nmin_rate = 50\nmax_rate = 10\n", "billing.min_rate"),
        ("[withdrawals]\nbuyer_withdrawals = 1\n", "withdrawals.buyer_withdrawals"),
        ("[ice]\nstun_urls = [1]\n", "ice.stun_urls"),
        ("server = 5\n", "server"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, names):
    with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace(".", r"\.")):
        load_config(write(tmp_path, text))


def test_money_keys_are_exact_decimals(tmp_path):
    cfg = load_config(write(tmp_path, "[withdrawals]\nfee_usdt = 0.1\nnetwork_fee_usdt = 0.2\n"))
    assert cfg.withdrawals.fee_musdt + cfg.withdrawals.network_fee_musdt == 300_000
    with pytest.raises(Exception, match="6 decimals"):
        _ = load_config(write(tmp_path, "[withdrawals]\nfee_usdt = 0.0000001\n")).withdrawals.fee_musdt


def test_example_file_lists_every_key_and_loads():
    example = ROOT / "config.example.toml"
    data = tomllib.loads(example.read_text())
    missing = [f"{s}.{k}" for s, k, _, _ in describe_keys() if k not in data.get(s, {})]
    assert missing == [], f"keys missing from config.example.toml: {missing}"
    text = example.read_text()
    for s, k, _, _ in describe_keys():
        line = next(ln for ln in text.splitlines() if ln.split("=")[0].strip() == k)
        assert "#" in line, f"{s}.{k} has no comment in config.example.toml"
    load_config(example)


def test_example_file_shows_a_commented_webhook_with_every_key():
    lines = (ROOT / "config.example.toml").read_text().splitlines()
    assert "# [[webhooks]]" in lines
    for _, k, _, _ in describe_webhook_keys():
        line = next((ln for ln in lines if ln.startswith(f"# {k} = ")), None)
        assert line is not None and "  # " in line, f"webhooks.{k} is not in the example"


def test_every_key_has_help():
    assert all(help for _, _, _, help in describe_keys() + describe_webhook_keys())


def test_webhooks_are_an_array_of_checked_tables(tmp_path):
    cfg = load_config(write(tmp_path, '[[webhooks]]\nurl = "http://127.0.0.1:9/hook"\n'
                                      'secret_env = "HOOK_SECRET"\n'
                                      'events = ["deposit.credited"]\n'
                                      '[[webhooks]]\nurl = "https://example.com/b"\n'
                                      'secret_env = "B"\n'))
    assert [w.url for w in cfg.webhooks] == ["http://127.0.0.1:9/hook", "https://example.com/b"]
    assert cfg.webhooks[0].events == ["deposit.credited"] and cfg.webhooks[1].events == []
    assert cfg.replace(billing={"min_rate": 2}).webhooks == cfg.webhooks
    for text, names in [
        ('[[webhooks]]\nurl = "ftp://x/y/z/w"\nsecret_env = "S"\n', "webhooks[0].url"),
        ('[[webhooks]]\nurl = "http://x.example/"\n', "webhooks[0].secret_env"),
        ('[[webhooks]]\nurl = "http://x.example/"\nsecret_env = "S"\nevents = ["nope"]\n',
         "webhooks[0].events"),
        ('[[webhooks]]\nurl = "http://x.example/"\nsecret_env = "S"\nsecret = "x"\n',
         "webhooks[0].secret"),
        ('webhooks = 3\n', "webhooks"),
    ]:
        with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace("]", r"\]")):
            load_config(write(tmp_path, text))


def test_secret_never_prints():
    s = Secret("deadbeef")
    assert "deadbeef" not in repr(s) and "deadbeef" not in str(s) and "deadbeef" not in f"{s}"
    assert s.reveal() == "deadbeef"


def test_replace_keeps_validation(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    assert cfg.replace(billing={"media_timeout_s": 2}).billing.media_timeout_s == 2.0
    with pytest.raises(ConfigError, match="billing.media_timeout_s"):
        cfg.replace(billing={"media_timeout_s": "x"})


def test_trusted_proxies_are_addresses_or_networks(tmp_path):
    cfg = load_config(write(tmp_path, '[server]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8",'
                                      ' "::1"]\n'))
    assert cfg.server.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "::1"]
    assert load_config(write(tmp_path, "")).server.trusted_proxies == []
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
        load_config(write(tmp_path, '[server]\ntrusted_proxies = ["caddy"]\n'))


def test_shipped_deploy_config_trusts_the_caddy_it_ships_with():
    import ipaddress
    import re

    cfg = load_config(ROOT / "deploy" / "meterchat.toml")
    caddy = (ROOT / "deploy" / "Caddyfile").read_text()
    host, port = re.search(r"reverse_proxy (\S+):(\d+)", caddy).groups()
    assert (cfg.server.host, cfg.server.port) == (host, int(port))
    # Caddy connects from the loopback address it proxies to.
    assert any(ipaddress.ip_address(host) in ipaddress.ip_network(n)
               for n in cfg.server.trusted_proxies)
    assert cfg.server.public_url.startswith("https://")
