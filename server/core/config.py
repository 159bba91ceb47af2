"""Configuration: every key declared once (default, type, help), read from one TOML file.

This module is the one entry: `Config` (the whole file, a section each), `load_config(path)`,
which validates the whole file and raises ConfigError naming the bad key, the checks across
keys, and `describe_keys()` for the docs and tests. The declaring and checking of one key is in
`config_keys.py`; the sections are declared by concept in `config_server.py`,
`config_chain.py`, `config_calls.py`, `config_economy.py` and `config_operator.py`, and
re-exported here. Money keys are read as Decimal (TOML floats are parsed with
parse_float=Decimal) and exposed in integer µUSDT by properties, so no float ever touches money.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterchat.core import bonus_bound
from meterchat.core.config_calls import BillingConfig, CallsConfig, IceConfig
from meterchat.core.config_chain import (
    NETWORKS,
    ChainConfig,
    DepositsConfig,
    DevnetConfig,
    SweepsConfig,
    WithdrawalsConfig,
)
from meterchat.core.config_economy import (
    EconomyConfig,
    FavouritesConfig,
    SellersConfig,
    parse_bonus_tiers,
)
from meterchat.core.config_keys import (
    ConfigError,
    Secret,
    build_section,
    describe_fields,
    key,
    section_to_dict,
    toml_name,
)
from meterchat.core.config_operator import (
    MAIL_TLS,
    EventsConfig,
    MailConfig,
    OperatorConfig,
    WebhookConfig,
)
from meterchat.core.config_server import DatabaseConfig, SecurityConfig, ServerConfig
from meterchat.core.event_types import EVENT_TYPES

__all__ = [
    "MAIL_TLS", "NETWORKS", "WEBHOOKS", "BillingConfig", "CallsConfig", "ChainConfig", "Config",
    "ConfigError", "DatabaseConfig", "DepositsConfig", "DevnetConfig", "EconomyConfig",
    "EventsConfig", "FavouritesConfig", "IceConfig", "MailConfig", "OperatorConfig", "Secret",
    "SecurityConfig", "SellersConfig", "ServerConfig", "SweepsConfig", "WebhookConfig",
    "WithdrawalsConfig", "config_from_dict", "describe_keys", "describe_webhook_keys", "key",
    "load_config", "parse_bonus_tiers", "section_names", "section_type", "toml_name",
]


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    devnet: DevnetConfig = field(default_factory=DevnetConfig)
    deposits: DepositsConfig = field(default_factory=DepositsConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    withdrawals: WithdrawalsConfig = field(default_factory=WithdrawalsConfig)
    sweeps: SweepsConfig = field(default_factory=SweepsConfig)
    ice: IceConfig = field(default_factory=IceConfig)
    operator: OperatorConfig = field(default_factory=OperatorConfig)
    economy: EconomyConfig = field(default_factory=EconomyConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    sellers: SellersConfig = field(default_factory=SellersConfig)
    favourites: FavouritesConfig = field(default_factory=FavouritesConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    # `[[webhooks]]`: an array of tables, each a WebhookConfig.
    webhooks: tuple[WebhookConfig, ...] = field(default_factory=tuple)
    # Directory relative paths were resolved against (the config file's, or the cwd).
    base_dir: Path = field(default_factory=Path.cwd, compare=False)

    def replace(self, **sections: Any) -> Config:
        """A copy with some keys changed: replace(billing={"media_timeout_s": 2})."""
        data: dict[str, Any] = {
            name: section_to_dict(getattr(self, name)) for name in section_names()}
        data[WEBHOOKS] = [section_to_dict(w) for w in self.webhooks]
        for name, values in sections.items():
            if name == WEBHOOKS:
                data[WEBHOOKS] = values  # replace(webhooks=[{url, secret_env, events}])
            else:
                data.setdefault(name, {}).update(values)
        return config_from_dict(data, self.base_dir)


# The one array of tables of the file.
WEBHOOKS = "webhooks"


def section_names() -> list[str]:
    """The file's [tables] (the [[webhooks]] array aside)."""
    return [f.name for f in dataclasses.fields(Config) if f.name not in ("base_dir", WEBHOOKS)]


def section_type(name: str) -> type:
    hint: type = typing.get_type_hints(Config)[name]
    return hint


def config_from_dict(data: dict[str, Any], base_dir: Path) -> Config:
    """Build a validated Config from parsed TOML; unknown keys and bad values raise."""
    known = section_names()
    for name in data:
        if name not in known and name != WEBHOOKS:
            raise ConfigError(
                f"unknown config section [{name}]; known sections: {', '.join(known)}"
            )
    sections = {name: build_section(name, data.get(name, {}), base_dir, section_type(name))
                for name in known}
    security = data.get("security", {})
    if "require_2fa_for_admins" not in security:
        # Not set: required on mainnet, where the admin's account guards real money.
        sections["security"] = dataclasses.replace(
            sections["security"],
            require_2fa_for_admins=sections["chain"].network == "mainnet")
    cfg = Config(base_dir=base_dir, webhooks=_build_webhooks(data.get(WEBHOOKS, []), base_dir),
                 **sections)
    _check_across_keys(cfg)
    return cfg


def _build_webhooks(values: Any, base_dir: Path) -> tuple[WebhookConfig, ...]:
    """The `[[webhooks]]` tables, each checked like a section, named `webhooks[i]`."""
    if not isinstance(values, list):
        raise ConfigError("config key webhooks: expected [[webhooks]] tables")
    out: list[WebhookConfig] = []
    for i, table in enumerate(values):
        where = f"{WEBHOOKS}[{i}]"
        hook: WebhookConfig = build_section(where, table, base_dir, WebhookConfig)
        if not hook.url.startswith(("http://", "https://")) or len(hook.url) < 10:
            raise ConfigError(f"config key {where}.url: expected an http:// or https:// URL, "
                              f"got {hook.url!r}")
        if not hook.secret_env:
            raise ConfigError(f"config key {where}.secret_env: name the environment variable "
                              "that holds this webhook's signing secret")
        unknown = [t for t in hook.events if t not in EVENT_TYPES]
        if unknown:
            raise ConfigError(f"config key {where}.events: unknown event types {unknown}; "
                              f"known: {', '.join(EVENT_TYPES)}")
        if any(w.url == hook.url for w in out):
            raise ConfigError(f"config key {where}.url: {hook.url} is configured twice")
        out.append(hook)
    return tuple(out)


def _check_across_keys(cfg: Config) -> None:
    if cfg.billing.min_rate > cfg.billing.max_rate:
        raise ConfigError("config key billing.min_rate: must not exceed billing.max_rate")
    try:
        tiers = parse_bonus_tiers(cfg.economy.bonus_tiers)
    except ValueError as exc:
        raise ConfigError(f"config key economy.bonus_tiers: {exc}") from None
    if -1 < cfg.economy.tip_commission_percent < 0:
        raise ConfigError("config key economy.tip_commission_percent: -1 or 0..100")
    for entry in cfg.server.trusted_proxies:
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ConfigError(f"config key server.trusted_proxies: {entry!r} is not an IP "
                              "address or a CIDR like 10.0.0.0/8") from None
    _check_bonus_bound(cfg, tiers)


def _check_bonus_bound(cfg: Config, tiers: list[tuple[int, int]]) -> None:
    """A tier so high that spending a whole top-up and its bonus on a colluding seller pays
    more than the top-up cost is refused (core/bonus_bound.py has the rule)."""
    floor = bonus_bound.commission_floor_ppm(cfg.billing.commission_percent,
                                         cfg.economy.tip_commission_percent)
    allowed = bonus_bound.max_bonus_ppm(floor)
    top = max((p for _, p in tiers), default=0)
    if top > allowed:
        raise ConfigError(
            f"config key economy.bonus_tiers: a {Decimal(top) / 10_000} % tier with a"
            f" {Decimal(floor) / 10_000} % commission (the lower of billing.commission_percent"
            " and economy.tip_commission_percent) would let a buyer who spends a top-up and"
            " its bonus on a colluding seller take out more than the top-up cost; with this"
            f" commission a tier (plus any promotion) may be at most"
            f" {Decimal(allowed) / 10_000} %")


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a TOML config file; None means every default (paths under ./)."""
    if path is None:
        return config_from_dict({}, Path.cwd())
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    return config_from_dict(data, p.resolve().parent)


def describe_keys() -> list[tuple[str, str, Any, str]]:
    """(section, key, default, help) for every declared key, for docs and tests."""
    return [row for name in section_names() for row in describe_fields(name, section_type(name))]


def describe_webhook_keys() -> list[tuple[str, str, Any, str]]:
    """("webhooks", key, default, help) for each key of a `[[webhooks]]` table."""
    return describe_fields(WEBHOOKS, WebhookConfig)
