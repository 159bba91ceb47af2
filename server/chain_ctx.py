"""The app's link to TRON: resolves the network's endpoints, USDT contract, deposit address and
hot-wallet key from config, starts the embedded devnet node in this process when the network
is devnet (and no endpoint is set), and opens the ChainGateway (chain/failover.py: one node
or several, reads failing over, broadcasts to all). Everything is published under typed
AppKeys and closed again in the same cleanup_ctx.

Which nodes: `chain.endpoints` when it lists any, else `chain.endpoint` when set, else the
embedded devnet (network devnet) or the network's public node."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from meterchat.chain import hd
from meterchat.chain.address import address_of_key, is_valid_address
from meterchat.chain.devnet import DevnetNode, DevnetSettings
from meterchat.chain.failover import FailoverGateway, endpoint_label
from meterchat.chain.gateway import ChainGateway
from meterchat.chain.networks import network
from meterchat.chain.prices import ChainPrices
from meterchat.core.config import Config, ConfigError, Secret
from meterchat.core.logs import event

log = logging.getLogger("meterchat.chain")


@dataclass(frozen=True)
class ChainInfo:
    """What the domain needs to know about the chain it runs on."""

    network: str
    endpoint: str  # the first of `endpoints`
    usdt_contract: str
    deposit_address: str
    # The hot wallet's private key (hex) for withdrawals; None when none is configured.
    hot_wallet_key: Secret | None
    hot_wallet_address: str | None
    endpoints: tuple[str, ...] = ()
    # deposits.mode = "address_per_user": the account xpub personal addresses derive from
    # ("" in unique_amount mode). Public: watching needs nothing else.
    deposit_xpub: str = ""


GATEWAY = web.AppKey("chain_gateway", ChainGateway)
CHAIN_INFO = web.AppKey("chain_info", ChainInfo)
DEVNET = web.AppKey("devnet_node", DevnetNode)
# The chain's energy price and a transfer's energy, cached once for the app (withdrawals'
# "auto" fee and the sweeper read the same figures).
CHAIN_PRICES = web.AppKey("chain_prices", ChainPrices)


def _secret_text(config: Config, name: str) -> tuple[str, str]:
    """(text, the key it came from) of the secret `chain.<name>_file` (a file, relative to
    the config's folder; unreadable is a ConfigError) or else `chain.<name>_env` (an
    environment variable) names; ("", "") when neither key is set."""
    file_name: str = getattr(config.chain, f"{name}_file")
    env_name: str = getattr(config.chain, f"{name}_env")
    if file_name:
        where = f"chain.{name}_file"
        path = Path(file_name)
        if not path.is_absolute():
            path = config.base_dir / path
        try:
            return path.read_text(encoding="utf-8").strip(), where
        except OSError as exc:
            raise ConfigError(f"config key {where}: cannot read {path}: {exc.strerror}") from exc
    if env_name:
        return os.environ.get(env_name, "").strip(), f"chain.{name}_env"
    return "", ""


def load_hot_wallet_key(config: Config) -> Secret | None:
    """The hot wallet key from the file or environment variable named in config (a file
    that is named must hold a key; an empty variable is no key)."""
    text, where = _secret_text(config, "hot_wallet_key")
    if where == "chain.hot_wallet_key_file" or text:
        return _checked_key(text, where)
    return None


def _checked_key(text: str, where: str) -> Secret:
    text = text.removeprefix("0x")
    try:
        address_of_key(text)
    except Exception:
        # Never echo the value: it may be a key with a typo.
        raise ConfigError(f"config key {where}: not a hex private key") from None
    return Secret(text)


def load_deposit_seed(config: Config, devnet: DevnetNode | None) -> Secret | None:
    """The BIP-39 mnemonic of chain.deposit_xpub from the file or environment variable named
    in config (the devnet's own on devnet); read by the sweeper alone, never logged. None
    when none is configured. ConfigError when it does not derive the configured xpub."""
    chain = config.chain
    text, where = _secret_text(config, "deposit_seed")
    if not text:
        if devnet is not None and not chain.deposit_xpub:
            return Secret(devnet.deposit_mnemonic)
        return None
    try:
        xpub = hd.xpub_of(text)
    except hd.HdKeyError:
        raise ConfigError(f"config key {where}: not a BIP-39 mnemonic") from None
    expected = chain.deposit_xpub or (devnet.deposit_xpub if devnet else "")
    if expected and xpub != expected:
        raise ConfigError(f"config key {where}: this mnemonic does not derive "
                          "chain.deposit_xpub")
    return Secret(text)


async def _devnet_status(endpoint: str, timeout_s: float) -> dict[str, Any]:
    """What a devnet node run on its own says of itself (its USDT contract, its deposit
    address)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                     trust_env=False) as http, \
            http.get(endpoint.rstrip("/") + "/devnet/status") as resp:
        resp.raise_for_status()
        status = await resp.json(content_type=None)
    if not isinstance(status, dict):
        raise ValueError("/devnet/status answered no object")
    return status


def configured_endpoints(config: Config) -> list[str]:
    """The nodes config names (`endpoints` first, then `endpoint`); [] = none named."""
    chain = config.chain
    listed = [e.strip() for e in chain.endpoints if e.strip()]
    if listed:
        return list(dict.fromkeys(listed))
    return [chain.endpoint] if chain.endpoint else []


async def resolve(config: Config, devnet: DevnetNode | None) -> ChainInfo:
    chain = config.chain
    net = network(chain.network)
    endpoints = configured_endpoints(config) or [devnet.url if devnet else net.endpoint]
    endpoint = endpoints[0]
    usdt = chain.usdt_contract or (devnet.usdt_contract if devnet else net.usdt_contract)
    deposit = chain.deposit_address or (devnet.deposit_address if devnet else "")
    if chain.network == "devnet" and devnet is None and not (usdt and deposit):
        # A devnet node run on its own (`meterchat devnet serve`) tells what it has.
        status, error = None, None
        for url in endpoints:
            try:
                status = await _devnet_status(url, chain.request_timeout_s)
                break
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                error = exc
        if status is None:
            raise ConfigError(
                f"config key chain.endpoint: no devnet node answers at {', '.join(endpoints)}"
                f" ({error})")
        usdt = usdt or status["usdt_contract"]
        deposit = deposit or status["deposit_address"]
    if not is_valid_address(usdt):
        raise ConfigError(f"config key chain.usdt_contract: set a USDT contract for {net.name}")
    if not is_valid_address(deposit):
        raise ConfigError(
            "config key chain.deposit_address: set the platform's TRON deposit address (T...)"
        )
    key = load_hot_wallet_key(config)
    if key is None and devnet is not None:
        key = Secret(devnet.hot_wallet_key_hex)
    xpub = ""
    if config.deposits.mode == "address_per_user":
        xpub = chain.deposit_xpub or (devnet.deposit_xpub if devnet else "")
        if not xpub and chain.network == "devnet" and devnet is None:
            xpub = str((await _devnet_status(endpoint, chain.request_timeout_s))
                       .get("deposit_xpub") or "")
        if not xpub:
            raise ConfigError("config key chain.deposit_xpub: deposits.mode ="
                              ' "address_per_user" needs the account xpub of m/44\'/195\'/0\'')
        try:
            hd.check_xpub(xpub)
        except hd.HdKeyError as exc:
            raise ConfigError(f"config key chain.deposit_xpub: {exc}") from None
    return ChainInfo(
        network=chain.network,
        endpoint=endpoint,
        endpoints=tuple(endpoints),
        usdt_contract=usdt,
        deposit_address=deposit,
        hot_wallet_key=key,
        hot_wallet_address=address_of_key(key.reveal()) if key else None,
        deposit_xpub=xpub,
    )


def chain_ctx(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        devnet = None
        if config.chain.network == "devnet" and not configured_endpoints(config):
            devnet = DevnetNode(DevnetSettings.from_config(config.devnet))
            await devnet.start()
            app[DEVNET] = devnet
        try:
            info = await resolve(config, devnet)
            app[CHAIN_INFO] = info
            event(log, "chain_ready", network=info.network,
                  endpoint=endpoint_label(info.endpoint),
                  endpoints=[endpoint_label(e) for e in info.endpoints],
                  node="embedded devnet" if devnet is not None else "remote",
                  usdt_contract=info.usdt_contract, deposit_address=info.deposit_address,
                  hot_wallet_address=info.hot_wallet_address)
            gateway = FailoverGateway.of_endpoints(
                info.endpoints, info.usdt_contract, config.chain.request_timeout_s,
                config.chain.api_key_env, backoff_base_s=config.chain.node_backoff_s,
                backoff_max_s=config.chain.node_backoff_max_s)
            app[GATEWAY] = gateway
            try:
                yield
            finally:
                await gateway.close()
        finally:
            if devnet is not None:
                await devnet.stop()

    return ctx
