"""The devnet's HTTP face: DevnetNode serves the full-node endpoints tronpy 0.6.2 and
meterchat's client use (`/wallet/*`, and `/walletsolidity/*` answering only from solidified
blocks) over a DevnetState, makes a block every `block_time_s`, and offers the faucet
(`POST /devnet/transfer {to, usdt}` -> `{txid}`) and `GET /devnet/status`.

Answers use the `"visible": true` format tronpy asks for: base58 addresses, hex without 0x.
Keys are available in-process only (attributes of the node), never over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from meterchat.chain import hd
from meterchat.chain.address import is_valid_address, to_base58, to_hex41
from meterchat.chain.devnet import proto, stake_api
from meterchat.chain.devnet.abi import (
    TRC20_ABI,
    USDT_DECIMALS,
    USDT_NAME,
    USDT_SYMBOL,
    abi_string,
    hexmsg,
    word,
)
from meterchat.chain.devnet.contracts import (
    CREATE_ACCOUNT_FEE_SUN,
    CREATE_ACCOUNT_NET_FEE_SUN,
    ENERGY_REVERT,
    NET_PRICE_SUN,
    TRX_TOKEN,
    USDT_TOKEN,
    Refused,
)
from meterchat.chain.devnet.state import USDT_TOTAL_SUPPLY, DevnetState, Json, StoredTx

log = logging.getLogger("meterchat.devnet")

# What a wallet endpoint is given (the JSON body, whether it answers from solidified blocks
# only) and answers (the JSON to send back).
Endpoint = Callable[[Json, bool], Any]


class DevnetConfig(Protocol):
    """The `[devnet]` section of meterchat's config, as far as the node reads it."""

    @property
    def path(self) -> Path: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def block_time_s(self) -> float: ...
    @property
    def solidify_depth(self) -> int: ...


@dataclass(frozen=True)
class DevnetSettings:
    path: Path
    host: str = "127.0.0.1"
    port: int = 0
    block_time_s: float = 3.0
    solidify_depth: int = 19

    @classmethod
    def from_config(cls, devnet_config: DevnetConfig) -> DevnetSettings:
        return cls(devnet_config.path, devnet_config.host, devnet_config.port,
                   devnet_config.block_time_s, devnet_config.solidify_depth)


def block_json(state: DevnetState, num: int) -> Json:
    """getblockbynum's answer for block `num` ({} when there is none)."""
    block = state.block(num)
    if block is None:
        return {}
    out: Json = {
        "blockID": block.id,
        "block_header": {"raw_data": {"number": block.num, "timestamp": block.time_ms,
                                      "parentHash": block.parent_id, "version": 30}},
    }
    txs = [t.tx for t in state.block_txs(num)]
    if txs:
        out["transactions"] = txs
    return out


def base_units(value: Any, places: int) -> int:
    """A decimal amount ("10.5" or 10) -> integer base units with `places` decimals."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("amounts are decimal strings like \"10.5\"")
    try:
        d = Decimal(str(value)).scaleb(places)
    except InvalidOperation:
        raise ValueError("amounts are decimal strings like \"10.5\"") from None
    if not d.is_finite() or d != d.to_integral_value() or d < 0:
        raise ValueError(f"amount must be non-negative with at most {places} decimals")
    return int(d)


class DevnetNode:
    """The devnet node: state + HTTP server + block producer. `await start()`, `await
    stop()`. Keys and addresses are attributes for in-process use only."""

    def __init__(self, settings: DevnetSettings) -> None:
        self.settings = settings
        self.state: DevnetState | None = None
        self._runner: web.AppRunner | None = None
        self._producer: asyncio.Task[None] | None = None
        self.url = ""
        self._listeners: dict[str, web.AppRunner] = {}
        self.new_block = asyncio.Event()
        self._xpub: str | None = None

    # In-process facts (never served over HTTP except the public addresses).
    @property
    def usdt_contract(self) -> str:
        return self._state.meta("usdt_contract") or ""

    @property
    def deposit_address(self) -> str:
        return self._state.address("deposit_key")

    @property
    def deposit_mnemonic(self) -> str:
        """The BIP-39 mnemonic of the personal deposit addresses (in-process only)."""
        return self._state.meta("deposit_mnemonic") or ""

    @property
    def deposit_xpub(self) -> str:
        """Its account xpub (m/44'/195'/0'), public."""
        if self._xpub is None:
            self._xpub = hd.xpub_of(self.deposit_mnemonic)
        return self._xpub

    @property
    def hot_wallet_key_hex(self) -> str:
        return self._state.meta("hot_wallet_key") or ""

    @property
    def hot_wallet_address(self) -> str:
        return self._state.address("hot_wallet_key")

    @property
    def faucet_key_hex(self) -> str:
        return self._state.meta("faucet_key") or ""

    @property
    def faucet_address(self) -> str:
        return self._state.address("faucet_key")

    @property
    def _state(self) -> DevnetState:
        if self.state is None:
            raise RuntimeError("devnet is not started")
        return self.state

    async def start(self) -> None:
        self.state = DevnetState(self.settings.path, self.settings.solidify_depth)
        self._runner, self.url = await self._listen(self.settings.port)
        self._producer = asyncio.create_task(self._produce_forever(), name="devnet-blocks")

    async def _listen(self, port: int) -> tuple[web.AppRunner, str]:
        app = web.Application(client_max_size=1 << 20)
        self._routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, port)
        await site.start()
        host, bound = runner.addresses[0][:2]
        return runner, f"http://{host}:{bound}"

    async def add_listener(self, port: int = 0) -> str:
        """One more HTTP listener over this node's state, returning its URL: to a client, a
        second node of the same network (one chain, two servers that answer for it), which
        `stop_listener(url)` takes down alone."""
        if self.state is None:
            raise RuntimeError("devnet is not started")
        runner, url = await self._listen(port)
        self._listeners[url] = runner
        return url

    async def stop_listener(self, url: str) -> None:
        runner = self._listeners.pop(url)
        await runner.cleanup()

    async def stop(self) -> None:
        for url in list(self._listeners):
            await self.stop_listener(url)
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
            self._producer = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.state is not None:
            self.state.close()
            self.state = None

    async def _produce_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.block_time_s)
            try:
                self._state.produce_block()
            except Exception:
                log.exception("devnet block production failed")
            self.new_block.set()
            self.new_block = asyncio.Event()

    def status(self) -> Json:
        return {
            "block": self._state.head().num,
            "solidified_block": self._state.solid_num(),
            "usdt_contract": self.usdt_contract,
            "deposit_address": self.deposit_address,
            "deposit_xpub": self.deposit_xpub,
            "hot_wallet_address": self.hot_wallet_address,
            "block_time_s": self.settings.block_time_s,
            "solidify_depth": self.settings.solidify_depth,
        }

    def transfer(self, to: str, usdt_musdt: int = 0, trx_sun: int = 0,
                 fee_limit_sun: int = 40_000_000) -> str:
        """Send USDT (or TRX) from the faucet; returns the TXID."""
        if usdt_musdt:
            return self._state.faucet_transfer(to, usdt_musdt, USDT_TOKEN, fee_limit_sun)
        return self._state.faucet_transfer(to, trx_sun, TRX_TOKEN, fee_limit_sun)

    async def wait_blocks(self, n: int = 1) -> None:
        for _ in range(n):
            await self.new_block.wait()

    async def wait_solidified(self, txid: str, timeout_s: float = 30.0) -> int:
        """Wait until the transaction's block is solidified; returns its block number."""
        async with asyncio.timeout(timeout_s):
            while True:
                stored = self._state.stored_tx(txid)
                if stored and stored.block_num is not None \
                        and stored.block_num <= self._state.solid_num():
                    return stored.block_num
                await self.new_block.wait()

    # -- HTTP

    def _routes(self, app: web.Application) -> None:
        wallet: dict[str, Endpoint] = {
            "getnodeinfo": self._getnodeinfo,
            "getnowblock": self._getnowblock,
            "getblockbynum": self._getblockbynum,
            "getsignweight": self._getsignweight,
            "broadcasttransaction": self._broadcast,
            "gettransactionbyid": self._gettransactionbyid,
            "gettransactioninfobyid": self._gettransactioninfobyid,
            "gettransactioninfobyblocknum": self._gettransactioninfobyblocknum,
            "getcontract": self._getcontract,
            "triggerconstantcontract": self._triggerconstantcontract,
            "getaccount": self._getaccount,
            "getchainparameters": self._getchainparameters,
            "getaccountresource": lambda b, _: stake_api.account_resource(self._state, b),
            "getcandelegatedmaxsize":
                lambda b, _: stake_api.can_delegate_max_size(self._state, b),
            "freezebalancev2":
                lambda b, _: stake_api.build(self._state, "FreezeBalanceV2Contract", b),
            "delegateresource":
                lambda b, _: stake_api.build(self._state, "DelegateResourceContract", b),
            "undelegateresource":
                lambda b, _: stake_api.build(self._state, "UnDelegateResourceContract", b),
        }
        solidity = ("getnowblock", "getblockbynum", "gettransactionbyid",
                    "gettransactioninfobyid", "gettransactioninfobyblocknum", "getaccount")
        for name, fn in wallet.items():
            app.router.add_route("*", f"/wallet/{name}", self._endpoint(fn, solid=False))
        for name in solidity:
            app.router.add_route("*", f"/walletsolidity/{name}",
                                 self._endpoint(wallet[name], solid=True))
        app.router.add_post("/devnet/transfer", self._faucet)
        app.router.add_get("/devnet/status", self._status)

    def _endpoint(self, fn: Endpoint,
                  solid: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                raw = await request.read()
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
            except ValueError as exc:
                return web.json_response({"Error": f"bad request: {exc}"})
            try:
                return web.json_response(fn(body, solid))
            except (KeyError, TypeError, ValueError) as exc:
                return web.json_response({"Error": f"{type(exc).__name__}: {exc}"})
        return handler

    def _getnodeinfo(self, body: Json, solid: bool) -> Json:
        s = self._state
        head, solid_block = s.head(), s.solid_block()
        return {
            "block": f"Num:{head.num},ID:{head.id}",
            "solidityBlock": f"Num:{solid_block.num},ID:{solid_block.id}",
            "beginSyncNum": 0,
            "currentConnectCount": 0,
            "activeConnectCount": 0,
            "passiveConnectCount": 0,
            "configNodeInfo": {"codeVersion": "devnet", "p2pVersion": "devnet"},
        }

    def _getnowblock(self, body: Json, solid: bool) -> Json:
        s = self._state
        return block_json(s, s.solid_num() if solid else s.head().num)

    def _getblockbynum(self, body: Json, solid: bool) -> Json:
        num = int(body["num"])
        if solid and num > self._state.solid_num():
            return {}
        return block_json(self._state, num)

    def _in_chain(self, txid: Any, solid: bool) -> StoredTx | None:
        """The transaction once it is in a block (solidified, for the solidity API)."""
        if not isinstance(txid, str):
            raise ValueError("value must be a transaction id")
        stored = self._state.stored_tx(txid.lower())
        if stored is None or stored.block_num is None:
            return None  # pending transactions are not in the chain store yet
        if solid and stored.block_num > self._state.solid_num():
            return None
        return stored

    def _gettransactionbyid(self, body: Json, solid: bool) -> Json:
        stored = self._in_chain(body.get("value"), solid)
        return stored.tx if stored else {}

    def _gettransactioninfobyid(self, body: Json, solid: bool) -> Json:
        stored = self._in_chain(body.get("value"), solid)
        return stored.info if stored else {}

    def _gettransactioninfobyblocknum(self, body: Json, solid: bool) -> list[Json]:
        num = int(body["num"])
        if solid and num > self._state.solid_num():
            return []
        return [t.info for t in self._state.block_txs(num)]

    def _getsignweight(self, body: Json, solid: bool) -> Json:
        raw = body["raw_data"]
        txid = proto.txid_of(raw)
        owner_hex = to_hex41(raw["contract"][0]["parameter"]["value"]["owner_address"])
        return {
            "permission": {"type": "Owner", "permission_name": "owner", "threshold": 1,
                           "keys": [{"address": owner_hex, "weight": 1}]},
            "current_weight": 0,
            "result": {"code": "NOT_ENOUGH_PERMISSION"},
            "transaction": {
                "result": {"result": True},
                "txid": txid,
                "transaction": {
                    "txID": txid, "raw_data": raw,
                    "raw_data_hex": proto.raw_data_bytes(raw).hex(),
                    "signature": body.get("signature") or [],
                },
            },
        }

    def _broadcast(self, body: Json, solid: bool) -> Json:
        try:
            txid = self._state.broadcast(body)
        except Refused as exc:
            return {"code": exc.code, "txid": body.get("txID", ""), "message": hexmsg(exc.message)}
        return {"result": True, "txid": txid}

    def _getcontract(self, body: Json, solid: bool) -> Json:
        addr = to_base58(str(body.get("value", "")))
        if addr != self.usdt_contract:
            return {}
        return {
            "bytecode": "",
            "name": "TetherToken",
            "origin_address": self.faucet_address,
            "abi": {"entrys": TRC20_ABI},
            "contract_address": addr,
            "origin_energy_limit": 10_000_000,
            "consume_user_resource_percent": 30,
        }

    def _triggerconstantcontract(self, body: Json, solid: bool) -> Json:
        contract = to_base58(str(body.get("contract_address", "")))
        selector = str(body.get("function_selector", ""))
        param = str(body.get("parameter", ""))
        if contract != self.usdt_contract:
            return {"result": {"code": "CONTRACT_VALIDATE_ERROR",
                               "message": hexmsg("No contract or not a smart contract")}}
        if selector == "balanceOf(address)" and len(param) == 64:
            out = word(self._state.balance(to_base58(param[24:]), USDT_TOKEN))
        elif selector == "decimals()":
            out = word(USDT_DECIMALS)
        elif selector == "symbol()":
            out = abi_string(USDT_SYMBOL)
        elif selector == "name()":
            out = abi_string(USDT_NAME)
        elif selector == "totalSupply()":
            out = word(USDT_TOTAL_SUPPLY)
        elif selector == "transfer(address,uint256)" and len(param) == 128:
            return self._estimate_transfer(str(body.get("owner_address", "")), param)
        else:
            return {"result": {"code": "CONTRACT_EXE_ERROR",
                               "message": hexmsg("REVERT opcode executed")},
                    "constant_result": [""]}
        return {"result": {"result": True}, "energy_used": 935, "constant_result": [out]}

    def _estimate_transfer(self, owner: str, param: str) -> Json:
        """A USDT transfer run without a transaction: the energy execution would burn
        (DevnetState.usdt_transfer_energy, the same figure), or a revert when the owner
        holds too little."""
        to, amount = to_base58(param[24:64]), int(param[64:], 16)
        holds = self._state.balance(to_base58(owner), USDT_TOKEN) if owner else 0
        if holds < amount:
            return {"result": {"result": True}, "energy_used": ENERGY_REVERT,
                    "constant_result": [""],
                    "transaction": {"ret": [{"ret": "FAILED"}]}}
        return {"result": {"result": True},
                "energy_used": self._state.usdt_transfer_energy(to),
                "constant_result": [word(1)],
                "transaction": {"ret": [{}], "txID": ""}}

    def _getchainparameters(self, body: Json, solid: bool) -> Json:
        """java-tron's shape; the devnet's prices are state.py's (the energy price settable)."""
        return {"chainParameter": [
            {"key": "getMaintenanceTimeInterval", "value": 21_600_000},
            {"key": "getTransactionFee", "value": NET_PRICE_SUN},
            {"key": "getEnergyFee", "value": self._state.energy_price_sun()},
            {"key": "getCreateAccountFee", "value": CREATE_ACCOUNT_NET_FEE_SUN},
            {"key": "getCreateNewAccountFeeInSystemContract", "value": CREATE_ACCOUNT_FEE_SUN},
        ]}

    def _getaccount(self, body: Json, solid: bool) -> Json:
        addr = to_base58(str(body.get("address", "")))
        if not self._state.account_exists(addr):
            return {}
        return {"address": addr, "balance": self._state.balance(addr, TRX_TOKEN),
                "create_time": int(self._state.meta("created_at_ms") or 0),
                **self._state.stakes.account_fields(addr)}

    async def _faucet(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            to = body["to"]
            if not is_valid_address(to):
                raise ValueError("to must be a TRON address (T...)")
            usdt = base_units(body.get("usdt"), 6) if body.get("usdt") is not None else 0
            trx = base_units(body.get("trx"), 6) if body.get("trx") is not None else 0
            if (usdt > 0) == (trx > 0):
                raise ValueError("give exactly one positive amount: usdt or trx")
            fee_limit = base_units(body.get("fee_limit_trx", 40), 6)
            txid = self.transfer(to, usdt_musdt=usdt, trx_sun=trx, fee_limit_sun=fee_limit)
        except Refused as exc:
            return web.json_response({"error": {"code": exc.code.lower(),
                                                "message": exc.message}}, status=409)
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": {"code": "bad_request", "message": str(exc)}},
                                     status=400)
        return web.json_response({"txid": txid})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())
