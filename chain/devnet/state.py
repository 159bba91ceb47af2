"""The devnet's chain state, without HTTP: blocks, transactions, accounts and balances in
their own SQLite file (so they survive a restart), the checks every broadcast must pass,
the making of a block, and the faucet. What each contract checks and does when its block
is made, and what it costs, is chain/devnet/contracts.py's (Stake 2.0's: stake.py's).

Accounts and resources as java-tron keeps them: an address exists (`getaccount`, may own a
transaction) once it has received TRX; the first TRX transfer to it activates it and burns
1 TRX plus 0.1 TRX of account-creation bandwidth from the sender. Every other transaction
uses bandwidth (its bytes): the owner's staked bandwidth, else 600 free points per account
per day (kept here), else burned at 1,000 sun a byte; an owner who can pay neither is
refused BANDWITH_ERROR at broadcast.

Broadcasts are checked the way java-tron checks them: the TXID is recomputed from the raw
data (chain/devnet/proto.py: tronpy's protobuf, by hand for the stake contracts; never
trusted from the client), a TXID seen before is DUP_TRANSACTION_ERROR, an expired one
TRANSACTION_EXPIRATION_ERROR, an unknown reference block TAPOS_ERROR, a signature that does
not recover the owner SIGERROR. Transactions are kept in the `"visible": true` format tronpy
asks for: base58 addresses, hex without 0x.

At genesis it generates a funded faucet key, a funded hot-wallet key (USDT + TRX, for
withdrawals), a deposit key and the BIP-39 mnemonic of the personal deposit addresses (also
made on first open of a state from before it); they stay in the `meta` table, never served.

tronpy (its keys and protobuf messages) is imported by what signs or checks a transaction
(genesis, a broadcast, the faucet), not at import: serving an existing chain reads addresses
only (chain/address.py derives them without tronpy).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterchat.chain import hd
from meterchat.chain.address import address_of_key, to_base58, to_hex41, to_raw20
from meterchat.chain.devnet import proto
from meterchat.chain.devnet.abi import transfer_call_data
from meterchat.chain.devnet.contracts import (
    ENERGY_PRICE_SUN,
    ENERGY_TO_FRESH,
    ENERGY_TO_HOLDER,
    NET_PRICE_SUN,
    TRX_TOKEN,
    USDT_TOKEN,
    Refused,
    check_contract,
    execute_contract,
)
from meterchat.chain.devnet.stake import BANDWIDTH, Stakes

if TYPE_CHECKING:
    from tronpy.keys import PrivateKey

Json = dict[str, Any]

# java-tron's limits on a broadcast and on the free bandwidth (the costs are contracts.py's).
MAX_EXPIRATION_MS = 24 * 3600 * 1000
DAY_MS = 24 * 3600 * 1000
FREE_NET_PER_DAY = 600
# What genesis hands out.
FAUCET_USDT_MUSDT = 10**15
FAUCET_TRX_SUN = 10**15
HOT_WALLET_USDT_MUSDT = 100_000 * 10**6
HOT_WALLET_TRX_SUN = 10_000 * 10**6
USDT_TOTAL_SUPPLY = FAUCET_USDT_MUSDT + HOT_WALLET_USDT_MUSDT

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
CREATE TABLE IF NOT EXISTS activated (address TEXT PRIMARY KEY, created_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS free_net (
    address TEXT PRIMARY KEY, day INTEGER NOT NULL, used INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Block:
    num: int
    id: str
    parent_id: str
    time_ms: int

    @classmethod
    def of(cls, row: sqlite3.Row) -> Block:
        return cls(row["num"], row["id"], row["parent_id"], row["time_ms"])


@dataclass(frozen=True)
class StoredTx:
    """A transaction the node accepted: pending (`block_num` None, no receipt yet) or in a
    block with its receipt (`info`, gettransactioninfobyid's answer)."""

    txid: str
    block_num: int | None
    tx: Json
    info: Json

    @classmethod
    def of(cls, row: sqlite3.Row) -> StoredTx:
        return cls(row["txid"], row["block_num"], json.loads(row["tx_json"]),
                   json.loads(row["info_json"] or "{}"))


def now_ms() -> int:
    return int(time.time() * 1000)


def address_of(key: PrivateKey) -> str:
    return str(key.public_key.to_base58check_address())


def _visible_raw(raw: Json) -> Json:
    """raw_data with its addresses in base58, as a node answers with visible=true."""
    out: Json = json.loads(json.dumps(raw))
    for c in out.get("contract", []):
        value = c.get("parameter", {}).get("value", {})
        for k in ("owner_address", "to_address", "contract_address", "receiver_address"):
            if k in value:
                value[k] = to_base58(value[k])
    return out


class DevnetState:
    """The chain's state in SQLite. Synchronous and small: every method runs to completion
    on the event loop thread, so no two changes interleave."""

    def __init__(self, path: Path, solidify_depth: int) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self.solidify_depth = solidify_depth
        self.stakes = Stakes(self.conn)
        self._faucet_ts = 0
        if self.meta("usdt_contract") is None:
            self._genesis()
        if self.meta("activations_kept") is None:
            # A state from before accounts were kept: whoever holds TRX was activated.
            self.conn.execute("INSERT OR IGNORE INTO activated (address, created_at_ms)"
                              " SELECT address, 0 FROM balances WHERE token = ?", (TRX_TOKEN,))
            self.conn.execute("INSERT INTO meta (key, value) VALUES ('activations_kept', '1')")
        if self.meta("deposit_mnemonic") is None:
            self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                              ("deposit_mnemonic", hd.new_mnemonic()))

    def close(self) -> None:
        self.conn.close()

    # -- meta and genesis

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else None

    def key(self, name: str) -> PrivateKey:
        """One of the genesis keys: "faucet_key", "hot_wallet_key", "deposit_key"."""
        from tronpy.keys import PrivateKey

        return PrivateKey(bytes.fromhex(self.meta(name) or ""))

    def address(self, name: str) -> str:
        """The address of one of the genesis keys (without loading tronpy)."""
        return address_of_key(self.meta(name) or "")

    def _genesis(self) -> None:
        from tronpy.keys import PrivateKey

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
        c.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        c.execute("INSERT INTO blocks (num, id, parent_id, time_ms) VALUES (0, ?, ?, ?)",
                  (self._block_id(0, "0" * 64, t, []), "0" * 64, t))
        fa, ha = address_of(faucet), address_of(hot)
        c.executemany("INSERT INTO balances (address, token, amount) VALUES (?, ?, ?)", [
            (fa, USDT_TOKEN, FAUCET_USDT_MUSDT), (fa, TRX_TOKEN, FAUCET_TRX_SUN),
            (ha, USDT_TOKEN, HOT_WALLET_USDT_MUSDT), (ha, TRX_TOKEN, HOT_WALLET_TRX_SUN),
        ])
        c.executemany("INSERT INTO activated (address, created_at_ms) VALUES (?, ?)",
                      [(fa, t), (ha, t)])
        c.execute("INSERT INTO meta (key, value) VALUES ('activations_kept', '1')")
        c.execute("COMMIT")

    @staticmethod
    def _block_id(num: int, parent: str, t: int, txids: list[str]) -> str:
        digest = hashlib.sha256(f"{num}|{parent}|{t}|{','.join(txids)}".encode()).hexdigest()
        return f"{num:016x}" + digest[16:]

    # -- reads

    def head(self) -> Block:
        row = self.conn.execute(
            "SELECT num, id, parent_id, time_ms FROM blocks ORDER BY num DESC LIMIT 1"
        ).fetchone()
        if row is None:
            raise RuntimeError("the devnet has no genesis block")
        return Block.of(row)

    def solid_num(self) -> int:
        return max(0, self.head().num - self.solidify_depth)

    def block(self, num: int) -> Block | None:
        row = self.conn.execute(
            "SELECT num, id, parent_id, time_ms FROM blocks WHERE num = ?", (num,)).fetchone()
        return Block.of(row) if row else None

    def solid_block(self) -> Block:
        block = self.block(self.solid_num())
        if block is None:
            raise RuntimeError("the solidified block is missing")
        return block

    def balance(self, address: str, token: str) -> int:
        row = self.conn.execute(
            "SELECT amount FROM balances WHERE address = ? AND token = ?", (address, token)
        ).fetchone()
        return int(row["amount"]) if row else 0

    def usdt_transfer_energy(self, to: str) -> int:
        """The energy a USDT transfer to `to` burns (what execution charges and what
        triggerconstantcontract answers): a new balance slot costs more than an existing one."""
        return ENERGY_TO_HOLDER if self.balance(to, USDT_TOKEN) > 0 else ENERGY_TO_FRESH

    def energy_price_sun(self) -> int:
        """The price of a unit of energy burnt (getEnergyFee): mainnet's 100 sun unless a
        test set another (`set_energy_price_sun`, as the committee would)."""
        return int(self.meta("energy_price_sun") or ENERGY_PRICE_SUN)

    def set_energy_price_sun(self, price_sun: int) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES ('energy_price_sun', ?)"
                          " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                          (str(int(price_sun)),))

    def account_exists(self, address: str) -> bool:
        """Activated: it has received TRX (a TRC20 token alone does not make an account)."""
        return self.conn.execute(
            "SELECT 1 FROM activated WHERE address = ?", (address,)).fetchone() is not None

    def free_net_left(self, address: str, at_ms: int) -> int:
        """Free bandwidth points the account has left today (600 a day)."""
        row = self.conn.execute("SELECT day, used FROM free_net WHERE address = ?",
                                (address,)).fetchone()
        if row is None or row["day"] != at_ms // DAY_MS:
            return FREE_NET_PER_DAY
        return max(0, FREE_NET_PER_DAY - int(row["used"]))

    def _use_free_net(self, address: str, at_ms: int, points: int) -> None:
        day = at_ms // DAY_MS
        self.conn.execute(
            "INSERT INTO free_net (address, day, used) VALUES (?, ?, ?)"
            " ON CONFLICT (address) DO UPDATE SET used = CASE WHEN day = excluded.day"
            " THEN used + excluded.used ELSE excluded.used END, day = excluded.day",
            (address, day, points))

    def net_fee(self, owner: str, nbytes: int, at_ms: int) -> tuple[int, int]:
        """(points used, sun burned) for a transaction of `nbytes` bytes: bandwidth from the
        owner's stake, else its free points, else burned."""
        if self.stakes.available(owner, BANDWIDTH, at_ms) >= nbytes:
            return nbytes, 0
        if self.free_net_left(owner, at_ms) >= nbytes:
            return nbytes, 0
        return 0, nbytes * NET_PRICE_SUN

    def use_net(self, owner: str, nbytes: int, at_ms: int) -> None:
        """Charge `nbytes` of bandwidth points the way net_fee chose them."""
        if self.stakes.available(owner, BANDWIDTH, at_ms) >= nbytes:
            self.stakes.use(owner, BANDWIDTH, nbytes, at_ms)
        else:
            self._use_free_net(owner, at_ms, nbytes)

    def stored_tx(self, txid: str) -> StoredTx | None:
        row = self.conn.execute(
            "SELECT txid, block_num, tx_json, info_json FROM txs WHERE txid = ?", (txid,)
        ).fetchone()
        return StoredTx.of(row) if row else None

    def block_txs(self, num: int) -> list[StoredTx]:
        rows = self.conn.execute(
            "SELECT txid, block_num, tx_json, info_json FROM txs WHERE block_num = ?"
            " ORDER BY seq", (num,)
        ).fetchall()
        return [StoredTx.of(r) for r in rows]

    # -- writes

    def add(self, address: str, token: str, delta: int) -> None:
        self.conn.execute(
            "INSERT INTO balances (address, token, amount) VALUES (?, ?, ?)"
            " ON CONFLICT (address, token) DO UPDATE SET amount = amount + excluded.amount",
            (address, token, delta),
        )

    def activate(self, address: str, at_ms: int) -> None:
        """The account exists from now on (its first TRX arrived); again changes nothing."""
        self.conn.execute("INSERT OR IGNORE INTO activated (address, created_at_ms)"
                          " VALUES (?, ?)", (address, at_ms))

    def broadcast(self, body: Json) -> str:
        """Check and accept a signed transaction into the pending pool; returns its TXID.
        Raises Refused with java-tron's code."""
        from tronpy.keys import Signature

        try:
            raw = body["raw_data"]
            contracts = raw["contract"]
            if len(contracts) != 1:
                raise Refused("CONTRACT_VALIDATE_ERROR", "exactly one contract per transaction")
            contract = contracts[0]
            ctype = contract["type"]
            value = contract["parameter"]["value"]
            raw_hex = proto.raw_data_bytes(raw).hex()
            txid = proto.txid_of(raw)
            owner = to_base58(value["owner_address"])
        except Refused:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise Refused("OTHER_ERROR", f"malformed transaction: {exc}") from None
        if body.get("raw_data_hex") and body["raw_data_hex"] != raw_hex:
            raise Refused("OTHER_ERROR", "raw_data_hex does not match raw_data")
        if self.stored_tx(txid) is not None:
            raise Refused("DUP_TRANSACTION_ERROR", "dup transaction")
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
            signer = str(
                Signature(bytes.fromhex(sigs[0]))
                .recover_public_key_from_msg_hash(bytes.fromhex(txid))
                .to_base58check_address()
            )
        except Exception:
            raise Refused("SIGERROR", "Validate signature error: bad signature") from None
        if signer != owner:
            raise Refused("SIGERROR", f"Validate signature error: {signer} is not {owner}")
        check_contract(self, ctype, value, raw, owner, now)
        tx = {
            "visible": True,
            "txID": txid,
            "raw_data": _visible_raw(raw),
            "raw_data_hex": raw_hex,
            "signature": sigs,
        }
        seq = self.conn.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM txs").fetchone()["next"]
        self.conn.execute(
            "INSERT INTO txs (txid, seq, block_num, tx_json) VALUES (?, ?, NULL, ?)",
            (txid, seq, json.dumps(tx)),
        )
        return txid

    def _check_tapos(self, raw: Json) -> None:
        ref_bytes = str(raw.get("ref_block_bytes") or "")
        ref_hash = str(raw.get("ref_block_hash") or "")
        if len(ref_bytes) != 4 or len(ref_hash) != 16:
            raise Refused("TAPOS_ERROR", "Tapos check error: malformed reference block")
        low = int(ref_bytes, 16)
        rows = self.conn.execute(
            "SELECT id FROM blocks WHERE (num & 65535) = ? ORDER BY num DESC LIMIT 4", (low,)
        ).fetchall()
        if not any(r["id"][16:32] == ref_hash for r in rows):
            raise Refused("TAPOS_ERROR", "Tapos check error: reference block not found")

    def produce_block(self) -> int:
        """Make the next block from every pending transaction, executing each in order."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            head = self.head()
            num = head.num + 1
            t = max(now_ms(), head.time_ms + 1)
            pending = c.execute(
                "SELECT txid, tx_json FROM txs WHERE block_num IS NULL ORDER BY seq"
            ).fetchall()
            block_id = self._block_id(num, head.id, t, [p["txid"] for p in pending])
            for p in pending:
                tx = json.loads(p["tx_json"])
                info = execute_contract(self, tx, num, t)
                if info is None:  # no longer valid (e.g. TRX spent meanwhile): dropped
                    c.execute("DELETE FROM txs WHERE txid = ?", (p["txid"],))
                    continue
                c.execute(
                    "UPDATE txs SET block_num = ?, tx_json = ?, info_json = ? WHERE txid = ?",
                    (num, json.dumps(tx), json.dumps(info), p["txid"]),
                )
            c.execute("INSERT INTO blocks (num, id, parent_id, time_ms) VALUES (?, ?, ?, ?)",
                      (num, block_id, head.id, t))
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return num

    # -- the faucet

    def faucet_transfer(self, to: str, amount: int, token: str, fee_limit_sun: int) -> str:
        """Sign and broadcast a transfer of `amount` (sun or µUSDT) from the faucet."""

        key = self.key("faucet_key")
        owner = address_of(key)
        solid = self.solid_block()
        # A strictly increasing timestamp keeps two equal transfers in one ms distinct.
        ts = self._faucet_ts = max(now_ms(), self._faucet_ts + 1)
        value: Json
        if token == TRX_TOKEN:
            ctype = "TransferContract"
            value = {"owner_address": to_hex41(owner), "to_address": to_hex41(to),
                     "amount": amount}
        else:
            ctype = "TriggerSmartContract"
            value = {
                "owner_address": to_hex41(owner),
                "contract_address": to_hex41(self.meta("usdt_contract") or ""),
                "data": transfer_call_data(to_raw20(to), amount),
                "call_value": 0, "call_token_value": 0, "token_id": 0,
            }
        raw: Json = {
            "contract": [{"parameter": {"value": value,
                                        "type_url": f"type.googleapis.com/protocol.{ctype}"},
                          "type": ctype}],
            "timestamp": ts,
            "expiration": ts + 60_000,
            "ref_block_bytes": solid.id[12:16],
            "ref_block_hash": solid.id[16:32],
        }
        if ctype == "TriggerSmartContract":
            raw["fee_limit"] = fee_limit_sun
        txid = proto.txid_of(raw)
        sig = key.sign_msg_hash(bytes.fromhex(txid)).hex()
        return self.broadcast({"txID": txid, "raw_data": raw, "signature": [sig]})
