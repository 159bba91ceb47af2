"""The embedded devnet: a small TRON full node over HTTP, enough for tronpy 0.6.2 and for
meterchat's flows (DESIGN.md "Networks"). It holds TRX and one TRC20 USDT token (6
decimals), makes a block every `block_time_s` holding the transactions broadcast since,
counts a block as solidified `solidify_depth` blocks later, and keeps its state in its own
SQLite file so it survives a restart.

Broadcasts are checked the way java-tron checks them: the TXID is recomputed from the raw
data with tronpy's protobuf messages (never trusted from the client), a TXID seen before is
DUP_TRANSACTION_ERROR, an expired one TRANSACTION_EXPIRATION_ERROR, an unknown reference
block TAPOS_ERROR, a signature that does not recover the owner SIGERROR. A USDT transfer
burns energy as mainnet's does (64,285 energy to a holder, 130,285 to a fresh address, at
100 sun) and ends OUT_OF_ENERGY when its fee_limit cannot pay for it. Answers use the
`"visible": true` format tronpy asks for: base58 addresses, hex without 0x.

At genesis it generates a funded faucet key, a funded hot-wallet key (USDT + TRX, for
withdrawals) and a deposit address. Keys are available in-process only, never over HTTP.
The faucet is `POST /devnet/transfer {to, usdt}` -> `{txid}`; `GET /devnet/status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from aiohttp import web
from tronpy.keys import PrivateKey, Signature
from tronpy.proto.transaction import _raw_data_to_protobuf, calculate_txid_from_raw_data

from meterchat.chain.address import is_valid_address, to_base58, to_hex41, to_raw20
from meterchat.chain.gateway import TRANSFER_TOPIC

log = logging.getLogger("meterchat.devnet")

ENERGY_PRICE_SUN = 100
ENERGY_TO_HOLDER = 64_285
ENERGY_TO_FRESH = 130_285
ENERGY_REVERT = 29_631
NET_USAGE_BYTES = 345
MAX_EXPIRATION_MS = 24 * 3600 * 1000
MAX_FEE_LIMIT_SUN = 15_000 * 1_000_000
TRX_TOKEN = "TRX"
USDT_TOKEN = "USDT"
SELECTOR_TRANSFER = "a9059cbb"
FAUCET_USDT_MUSDT = 10**15
FAUCET_TRX_SUN = 10**15
HOT_WALLET_USDT_MUSDT = 100_000 * 10**6
HOT_WALLET_TRX_SUN = 10_000 * 10**6

TRC20_ABI = [
    {"type": "function", "name": "name", "stateMutability": "View", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "symbol", "stateMutability": "View", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "decimals", "stateMutability": "View", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
    {"type": "function", "name": "totalSupply", "stateMutability": "View", "inputs": [],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "View",
     "inputs": [{"name": "who", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "transfer", "stateMutability": "Nonpayable",
     "inputs": [{"name": "_to", "type": "address"}, {"name": "_value", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "event", "name": "Transfer", "anonymous": False,
     "inputs": [{"indexed": True, "name": "from", "type": "address"},
                {"indexed": True, "name": "to", "type": "address"},
                {"indexed": False, "name": "value", "type": "uint256"}]},
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, parent_id TEXT NOT NULL,
    time_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    txid TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, block_num INTEGER,
    tx_json TEXT NOT NULL, info_json TEXT);
CREATE INDEX IF NOT EXISTS txs_block ON txs(block_num, seq);
CREATE TABLE IF NOT EXISTS balances (
    address TEXT NOT NULL, token TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY (address, token));
"""


class Refused(Exception):
    """A broadcast the node refuses, with java-tron's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DevnetSettings:
    path: Path
    host: str = "127.0.0.1"
    port: int = 0
    block_time_s: float = 3.0
    solidify_depth: int = 19

    @classmethod
    def from_config(cls, devnet_config: Any) -> DevnetSettings:
        return cls(devnet_config.path, devnet_config.host, devnet_config.port,
                   devnet_config.block_time_s, devnet_config.solidify_depth)


def now_ms() -> int:
    return int(time.time() * 1000)


def _word(value: int) -> str:
    return f"{value:064x}"


def _abi_string(text: str) -> str:
    data = text.encode()
    padded = data.hex().ljust(((len(data) + 31) // 32) * 64, "0")
    return _word(32) + _word(len(data)) + padded


def _hexmsg(text: str) -> str:
    return text.encode().hex()


def _visible_raw(raw: dict) -> dict:
    """raw_data with its addresses in base58, as a node answers with visible=true."""
    out = json.loads(json.dumps(raw))
    for c in out.get("contract", []):
        value = c.get("parameter", {}).get("value", {})
        for k in ("owner_address", "to_address", "contract_address"):
            if k in value:
                value[k] = to_base58(value[k])
    return out


class DevnetState:
    """The chain's state in SQLite. Synchronous and small: every method runs to completion
    on the event loop thread, so no two changes interleave."""

    def __init__(self, path: Path, solidify_depth: int) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self.solidify_depth = solidify_depth
        self._faucet_ts = 0
        if self.meta("usdt_contract") is None:
            self._genesis()

    def close(self) -> None:
        self.conn.close()

    # -- meta and genesis

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _genesis(self) -> None:
        faucet, hot, deposit = (PrivateKey.random() for _ in range(3))
        usdt = to_base58(b"\x41" + secrets.token_bytes(20))
        t = now_ms()
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        meta = {
            "usdt_contract": usdt,
            "faucet_key": faucet.hex(),
            "hot_wallet_key": hot.hex(),
            "deposit_key": deposit.hex(),
            "created_at_ms": str(t),
        }
        c.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        c.execute("INSERT INTO blocks VALUES (0, ?, ?, ?)", (self._block_id(0, "0" * 64, t, []),
                                                            "0" * 64, t))
        fa = faucet.public_key.to_base58check_address()
        ha = hot.public_key.to_base58check_address()
        c.executemany("INSERT INTO balances VALUES (?, ?, ?)", [
            (fa, USDT_TOKEN, FAUCET_USDT_MUSDT), (fa, TRX_TOKEN, FAUCET_TRX_SUN),
            (ha, USDT_TOKEN, HOT_WALLET_USDT_MUSDT), (ha, TRX_TOKEN, HOT_WALLET_TRX_SUN),
        ])
        c.execute("COMMIT")

    @staticmethod
    def _block_id(num: int, parent: str, t: int, txids: list[str]) -> str:
        digest = hashlib.sha256(f"{num}|{parent}|{t}|{','.join(txids)}".encode()).hexdigest()
        return f"{num:016x}" + digest[16:]

    # -- reads

    def head(self) -> tuple[int, str, int]:
        return self.conn.execute(
            "SELECT num, id, time_ms FROM blocks ORDER BY num DESC LIMIT 1").fetchone()

    def solid_num(self) -> int:
        return max(0, self.head()[0] - self.solidify_depth)

    def block(self, num: int) -> tuple[int, str, str, int] | None:
        return self.conn.execute(
            "SELECT num, id, parent_id, time_ms FROM blocks WHERE num = ?", (num,)).fetchone()

    def balance(self, address: str, token: str) -> int:
        row = self.conn.execute(
            "SELECT amount FROM balances WHERE address = ? AND token = ?", (address, token)
        ).fetchone()
        return row[0] if row else 0

    def account_exists(self, address: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM balances WHERE address = ? LIMIT 1", (address,)).fetchone() is not None

    def tx_row(self, txid: str) -> tuple[int | None, str, str | None] | None:
        return self.conn.execute(
            "SELECT block_num, tx_json, info_json FROM txs WHERE txid = ?", (txid,)).fetchone()

    def block_txs(self, num: int) -> list[tuple[str, str]]:
        return self.conn.execute(
            "SELECT tx_json, info_json FROM txs WHERE block_num = ? ORDER BY seq", (num,)
        ).fetchall()

    # -- writes

    def _add(self, address: str, token: str, delta: int) -> None:
        self.conn.execute(
            "INSERT INTO balances VALUES (?, ?, ?) ON CONFLICT (address, token)"
            " DO UPDATE SET amount = amount + excluded.amount",
            (address, token, delta),
        )

    def broadcast(self, body: dict) -> str:
        """Check and accept a signed transaction into the pending pool; returns its TXID.
        Raises Refused with java-tron's code."""
        try:
            raw = body["raw_data"]
            contracts = raw["contract"]
            if len(contracts) != 1:
                raise Refused("CONTRACT_VALIDATE_ERROR", "exactly one contract per transaction")
            contract = contracts[0]
            ctype = contract["type"]
            value = contract["parameter"]["value"]
            txid = calculate_txid_from_raw_data(raw)
            raw_hex = _raw_data_to_protobuf(raw).SerializeToString().hex()
            owner = to_base58(value["owner_address"])
        except Refused:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise Refused("OTHER_ERROR", f"malformed transaction: {exc}") from None
        if body.get("raw_data_hex") and body["raw_data_hex"] != raw_hex:
            raise Refused("OTHER_ERROR", "raw_data_hex does not match raw_data")
        if self.tx_row(txid) is not None:
            raise Refused("DUP_TRANSACTION_ERROR", "dup transaction")
        head_num, _, _ = self.head()
        now = now_ms()
        expiration = int(raw.get("expiration") or 0)
        if expiration <= now or expiration > now + MAX_EXPIRATION_MS:
            raise Refused(
                "TRANSACTION_EXPIRATION_ERROR",
                f"Transaction expiration, transaction expiration time is {expiration}, "
                f"but now is {now}",
            )
        self._check_tapos(raw)
        sigs = body.get("signature") or []
        if len(sigs) != 1:
            raise Refused("SIGERROR", "Validate signature error: one signature expected")
        try:
            signer = (
                Signature(bytes.fromhex(sigs[0]))
                .recover_public_key_from_msg_hash(bytes.fromhex(txid))
                .to_base58check_address()
            )
        except Exception:
            raise Refused("SIGERROR", "Validate signature error: bad signature") from None
        if signer != owner:
            raise Refused("SIGERROR", f"Validate signature error: {signer} is not {owner}")
        self._validate_contract(ctype, value, raw, owner)
        tx = {
            "visible": True,
            "txID": txid,
            "raw_data": _visible_raw(raw),
            "raw_data_hex": raw_hex,
            "signature": sigs,
        }
        seq = self.conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM txs").fetchone()[0]
        self.conn.execute(
            "INSERT INTO txs (txid, seq, block_num, tx_json) VALUES (?, ?, NULL, ?)",
            (txid, seq, json.dumps(tx)),
        )
        return txid

    def _check_tapos(self, raw: dict) -> None:
        ref_bytes = str(raw.get("ref_block_bytes") or "")
        ref_hash = str(raw.get("ref_block_hash") or "")
        if len(ref_bytes) != 4 or len(ref_hash) != 16:
            raise Refused("TAPOS_ERROR", "Tapos check error: malformed reference block")
        low = int(ref_bytes, 16)
        rows = self.conn.execute(
            "SELECT id FROM blocks WHERE (num & 65535) = ? ORDER BY num DESC LIMIT 4", (low,)
        ).fetchall()
        if not any(r[0][16:32] == ref_hash for r in rows):
            raise Refused("TAPOS_ERROR", "Tapos check error: reference block not found")

    def _validate_contract(self, ctype: str, value: dict, raw: dict, owner: str) -> None:
        if ctype == "TransferContract":
            to = to_base58(value["to_address"])
            amount = int(value.get("amount") or 0)
            if amount <= 0:
                raise Refused("CONTRACT_VALIDATE_ERROR", "Amount must be greater than 0.")
            if to == owner:
                raise Refused("CONTRACT_VALIDATE_ERROR", "Cannot transfer TRX to yourself.")
            if self.balance(owner, TRX_TOKEN) < amount:
                raise Refused("CONTRACT_VALIDATE_ERROR", "balance is not sufficient.")
        elif ctype == "TriggerSmartContract":
            if to_base58(value["contract_address"]) != self.meta("usdt_contract"):
                raise Refused("CONTRACT_VALIDATE_ERROR", "No contract or not a smart contract")
            fee_limit = int(raw.get("fee_limit") or 0)
            if fee_limit < 0 or fee_limit > MAX_FEE_LIMIT_SUN:
                raise Refused("CONTRACT_VALIDATE_ERROR", "feeLimit must be >= 0 and <= 15000 TRX")
            if not self.account_exists(owner):
                raise Refused("CONTRACT_VALIDATE_ERROR", "Validate TriggerSmartContract error, "
                              "no OwnerAccount.")
        else:
            raise Refused("CONTRACT_VALIDATE_ERROR", f"contract type {ctype} is not supported "
                          "on the devnet")

    def produce_block(self) -> int:
        """Make the next block from every pending transaction, executing each in order."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            head_num, head_id, _ = self.head()
            num = head_num + 1
            t = max(now_ms(), self.head()[2] + 1)
            pending = c.execute(
                "SELECT txid, tx_json FROM txs WHERE block_num IS NULL ORDER BY seq"
            ).fetchall()
            block_id = self._block_id(num, head_id, t, [p[0] for p in pending])
            for txid, tx_json in pending:
                tx = json.loads(tx_json)
                info = self._execute(tx, num, t)
                if info is None:  # no longer valid (e.g. TRX spent meanwhile): dropped
                    c.execute("DELETE FROM txs WHERE txid = ?", (txid,))
                    continue
                c.execute(
                    "UPDATE txs SET block_num = ?, tx_json = ?, info_json = ? WHERE txid = ?",
                    (num, json.dumps(tx), json.dumps(info), txid),
                )
            c.execute("INSERT INTO blocks VALUES (?, ?, ?, ?)", (num, block_id, head_id, t))
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return num

    def _execute(self, tx: dict, num: int, t: int) -> dict | None:
        raw = tx["raw_data"]
        contract = raw["contract"][0]
        value = contract["parameter"]["value"]
        owner = value["owner_address"]
        info: dict[str, Any] = {"id": tx["txID"], "blockNumber": num, "blockTimeStamp": t}
        if contract["type"] == "TransferContract":
            amount = int(value["amount"])
            if self.balance(owner, TRX_TOKEN) < amount:
                return None
            self._add(owner, TRX_TOKEN, -amount)
            self._add(value["to_address"], TRX_TOKEN, amount)
            tx["ret"] = [{"contractRet": "SUCCESS"}]
            info["receipt"] = {"net_usage": 268}
            return info
        # A USDT call: energy is burnt as TRX from the owner, up to fee_limit.
        usdt = value["contract_address"]
        data = str(value.get("data") or "")
        budget_sun = min(int(raw.get("fee_limit") or 0), self.balance(owner, TRX_TOKEN))
        to = amount = None
        if data[:8] == SELECTOR_TRANSFER and len(data) == 8 + 128:
            try:
                to = to_base58(data[8 + 24:8 + 64])
                amount = int(data[72:136], 16)
            except ValueError:
                to = None
        energy = ENERGY_TO_HOLDER if to and self.balance(to, USDT_TOKEN) > 0 else ENERGY_TO_FRESH
        result, message, logs = "SUCCESS", "", []
        if to is None or amount is None:
            energy, result, message = ENERGY_REVERT, "REVERT", "REVERT opcode executed"
        elif budget_sun < energy * ENERGY_PRICE_SUN:
            energy = budget_sun // ENERGY_PRICE_SUN
            result = "OUT_OF_ENERGY"
            message = "Not enough energy for 'SSTORE' operation executing: curInvokeEnergyLimit"
        elif self.balance(owner, USDT_TOKEN) < amount:
            energy, result, message = ENERGY_REVERT, "REVERT", "REVERT opcode executed"
        else:
            self._add(owner, USDT_TOKEN, -amount)
            self._add(to, USDT_TOKEN, amount)
            logs = [{
                "address": usdt,
                "topics": [TRANSFER_TOPIC, to_raw20(owner).hex().rjust(64, "0"),
                           to_raw20(to).hex().rjust(64, "0")],
                "data": _word(amount),
            }]
        fee = min(energy * ENERGY_PRICE_SUN, budget_sun)
        self._add(owner, TRX_TOKEN, -fee)
        tx["ret"] = [{"contractRet": result}]
        info.update({
            "fee": fee,
            # Tether's transfer() returns false even when it succeeds (a known trap).
            "contractResult": [_word(0) if result == "SUCCESS" else ""],
            "contract_address": usdt,
            "receipt": {"energy_fee": fee, "energy_usage_total": energy,
                        "net_usage": NET_USAGE_BYTES, "result": result},
        })
        if logs:
            info["log"] = logs
        if result != "SUCCESS":
            info["result"] = "FAILED"
            info["resMessage"] = _hexmsg(message)
        return info

    # -- the faucet

    def faucet_transfer(self, to: str, amount: int, token: str, fee_limit_sun: int) -> str:
        key = PrivateKey(bytes.fromhex(self.meta("faucet_key") or ""))
        owner = key.public_key.to_base58check_address()
        solid = self.block(self.solid_num())
        # A strictly increasing timestamp keeps two equal transfers in one ms distinct.
        ts = self._faucet_ts = max(now_ms(), self._faucet_ts + 1)
        if token == TRX_TOKEN:
            ctype = "TransferContract"
            value = {"owner_address": to_hex41(owner), "to_address": to_hex41(to),
                     "amount": amount}
        else:
            ctype = "TriggerSmartContract"
            value = {
                "owner_address": to_hex41(owner),
                "contract_address": to_hex41(self.meta("usdt_contract") or ""),
                "data": SELECTOR_TRANSFER + to_raw20(to).hex().rjust(64, "0") + _word(amount),
                "call_value": 0, "call_token_value": 0, "token_id": 0,
            }
        raw = {
            "contract": [{"parameter": {"value": value,
                                        "type_url": f"type.googleapis.com/protocol.{ctype}"},
                          "type": ctype}],
            "timestamp": ts,
            "expiration": ts + 60_000,
            "ref_block_bytes": solid[1][12:16],
            "ref_block_hash": solid[1][16:32],
        }
        if ctype == "TriggerSmartContract":
            raw["fee_limit"] = fee_limit_sun
        txid = calculate_txid_from_raw_data(raw)
        sig = key.sign_msg_hash(bytes.fromhex(txid)).hex()
        return self.broadcast({"txID": txid, "raw_data": raw, "signature": [sig]})


def _block_json(state: DevnetState, num: int) -> dict:
    row = state.block(num)
    if row is None:
        return {}
    num, block_id, parent, t = row
    txs = [json.loads(tx) for tx, _ in state.block_txs(num)]
    out: dict[str, Any] = {
        "blockID": block_id,
        "block_header": {"raw_data": {"number": num, "timestamp": t, "parentHash": parent,
                                      "version": 30}},
    }
    if txs:
        out["transactions"] = txs
    return out


class DevnetNode:
    """The devnet node: state + HTTP server + block producer. `await start()`, `await
    stop()`. Keys and addresses are attributes for in-process use only."""

    def __init__(self, settings: DevnetSettings) -> None:
        self.settings = settings
        self.state: DevnetState | None = None
        self._runner: web.AppRunner | None = None
        self._producer: asyncio.Task | None = None
        self.url = ""
        self.new_block = asyncio.Event()

    # In-process facts (never served over HTTP except the public addresses).
    @property
    def usdt_contract(self) -> str:
        return self._state.meta("usdt_contract") or ""

    @property
    def deposit_address(self) -> str:
        return PrivateKey(bytes.fromhex(self._state.meta("deposit_key") or "")) \
            .public_key.to_base58check_address()

    @property
    def hot_wallet_key_hex(self) -> str:
        return self._state.meta("hot_wallet_key") or ""

    @property
    def hot_wallet_address(self) -> str:
        return PrivateKey(bytes.fromhex(self.hot_wallet_key_hex)).public_key \
            .to_base58check_address()

    @property
    def faucet_key_hex(self) -> str:
        return self._state.meta("faucet_key") or ""

    @property
    def _state(self) -> DevnetState:
        if self.state is None:
            raise RuntimeError("devnet is not started")
        return self.state

    async def start(self) -> None:
        self.state = DevnetState(self.settings.path, self.settings.solidify_depth)
        app = web.Application(client_max_size=1 << 20)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._producer = asyncio.create_task(self._produce_forever(), name="devnet-blocks")

    async def stop(self) -> None:
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

    def status(self) -> dict:
        head = self._state.head()[0]
        return {
            "block": head,
            "solidified_block": self._state.solid_num(),
            "usdt_contract": self.usdt_contract,
            "deposit_address": self.deposit_address,
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
                row = self._state.tx_row(txid)
                if row and row[0] is not None and row[0] <= self._state.solid_num():
                    return row[0]
                await self.new_block.wait()

    # -- HTTP

    def _routes(self, app: web.Application) -> None:
        wallet = {
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

    def _endpoint(self, fn, solid: bool):
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

    def _getnodeinfo(self, body: dict, solid: bool) -> dict:
        s = self._state
        num, block_id, _ = s.head()
        solid_row = s.block(s.solid_num())
        return {
            "block": f"Num:{num},ID:{block_id}",
            "solidityBlock": f"Num:{solid_row[0]},ID:{solid_row[1]}",
            "beginSyncNum": 0,
            "currentConnectCount": 0,
            "activeConnectCount": 0,
            "passiveConnectCount": 0,
            "configNodeInfo": {"codeVersion": "devnet", "p2pVersion": "devnet"},
        }

    def _getnowblock(self, body: dict, solid: bool) -> dict:
        s = self._state
        return _block_json(s, s.solid_num() if solid else s.head()[0])

    def _getblockbynum(self, body: dict, solid: bool) -> dict:
        num = int(body["num"])
        if solid and num > self._state.solid_num():
            return {}
        return _block_json(self._state, num)

    def _tx_visible(self, txid: Any, solid: bool) -> tuple[dict, dict]:
        if not isinstance(txid, str):
            raise ValueError("value must be a transaction id")
        row = self._state.tx_row(txid.lower())
        if row is None or row[0] is None:
            return {}, {}  # pending transactions are not in the chain store yet
        if solid and row[0] > self._state.solid_num():
            return {}, {}
        return json.loads(row[1]), json.loads(row[2] or "{}")

    def _gettransactionbyid(self, body: dict, solid: bool) -> dict:
        return self._tx_visible(body.get("value"), solid)[0]

    def _gettransactioninfobyid(self, body: dict, solid: bool) -> dict:
        return self._tx_visible(body.get("value"), solid)[1]

    def _gettransactioninfobyblocknum(self, body: dict, solid: bool) -> Any:
        num = int(body["num"])
        if solid and num > self._state.solid_num():
            return []
        return [json.loads(info) for _, info in self._state.block_txs(num)]

    def _getsignweight(self, body: dict, solid: bool) -> dict:
        raw = body["raw_data"]
        txid = calculate_txid_from_raw_data(raw)
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
                    "raw_data_hex": _raw_data_to_protobuf(raw).SerializeToString().hex(),
                    "signature": body.get("signature") or [],
                },
            },
        }

    def _broadcast(self, body: dict, solid: bool) -> dict:
        try:
            txid = self._state.broadcast(body)
        except Refused as exc:
            return {"code": exc.code, "txid": body.get("txID", ""), "message": _hexmsg(exc.message)}
        return {"result": True, "txid": txid}

    def _getcontract(self, body: dict, solid: bool) -> dict:
        addr = to_base58(str(body.get("value", "")))
        if addr != self.usdt_contract:
            return {}
        return {
            "bytecode": "",
            "name": "TetherToken",
            "origin_address": to_base58(self._faucet_address()),
            "abi": {"entrys": TRC20_ABI},
            "contract_address": addr,
            "origin_energy_limit": 10_000_000,
            "consume_user_resource_percent": 30,
        }

    def _faucet_address(self) -> str:
        return PrivateKey(bytes.fromhex(self.faucet_key_hex)).public_key.to_base58check_address()

    def _triggerconstantcontract(self, body: dict, solid: bool) -> dict:
        contract = to_base58(str(body.get("contract_address", "")))
        selector = str(body.get("function_selector", ""))
        param = str(body.get("parameter", ""))
        s = self._state
        if contract != self.usdt_contract:
            return {"result": {"code": "CONTRACT_VALIDATE_ERROR",
                               "message": _hexmsg("No contract or not a smart contract")}}
        if selector == "balanceOf(address)" and len(param) == 64:
            out = _word(s.balance(to_base58(param[24:]), USDT_TOKEN))
        elif selector == "decimals()":
            out = _word(6)
        elif selector == "symbol()":
            out = _abi_string("USDT")
        elif selector == "name()":
            out = _abi_string("Tether USD")
        elif selector == "totalSupply()":
            out = _word(FAUCET_USDT_MUSDT + HOT_WALLET_USDT_MUSDT)
        else:
            return {"result": {"code": "CONTRACT_EXE_ERROR",
                               "message": _hexmsg("REVERT opcode executed")},
                    "constant_result": [""]}
        return {"result": {"result": True}, "energy_used": 935, "constant_result": [out]}

    def _getaccount(self, body: dict, solid: bool) -> dict:
        addr = to_base58(str(body.get("address", "")))
        if not self._state.account_exists(addr):
            return {}
        return {"address": addr, "balance": self._state.balance(addr, TRX_TOKEN),
                "create_time": int(self._state.meta("created_at_ms") or 0)}

    async def _faucet(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            to = body["to"]
            if not is_valid_address(to):
                raise ValueError("to must be a TRON address (T...)")
            usdt = _musdt(body.get("usdt"), 6) if body.get("usdt") is not None else 0
            trx = _musdt(body.get("trx"), 6) if body.get("trx") is not None else 0
            if (usdt > 0) == (trx > 0):
                raise ValueError("give exactly one positive amount: usdt or trx")
            fee_limit = _musdt(body.get("fee_limit_trx", 40), 6)
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


def _musdt(value: Any, places: int) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("amounts are decimal strings like \"10.5\"")
    try:
        d = Decimal(str(value)).scaleb(places)
    except InvalidOperation:
        raise ValueError("amounts are decimal strings like \"10.5\"") from None
    if not d.is_finite() or d != d.to_integral_value() or d < 0:
        raise ValueError(f"amount must be non-negative with at most {places} decimals")
    return int(d)
