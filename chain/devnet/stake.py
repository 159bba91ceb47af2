"""The devnet's Stake 2.0: TRX staked for ENERGY or BANDWIDTH (FreezeBalanceV2Contract),
lent to another account (DelegateResourceContract) and taken back
(UnDelegateResourceContract), and the energy and bandwidth an account gets from it, as
java-tron answers them (getaccountresource, getcandelegatedmaxsize, getaccount's frozenV2)
and refuses them (CONTRACT_VALIDATE_ERROR with java-tron's messages).

The devnet's simple rule for how much a stake gives: an account's energy limit is its share
of the network's total energy, `TOTAL_ENERGY_LIMIT * weight / total_weight`, where its weight
is the whole TRX staked for energy it holds (its own minus what it lent, plus what it was
lent) and the total weight is every devnet account's plus `OTHER_ENERGY_WEIGHT` (the rest of
mainnet's stake, held constant, so that 1 TRX staked gives 10 energy, near mainnet's ratio);
bandwidth the same with its own figures (1 point a TRX). What an account used recovers
linearly over 24 hours. A transaction uses its owner's staked resource first, then (for
bandwidth) the 600 free points, and burns TRX only for the rest. Undelegating moves the
receiver's usage of the lent share back to the owner, as java-tron does.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from meterchat.chain.address import to_base58
from meterchat.chain.devnet.proto import resource_code

if TYPE_CHECKING:
    from meterchat.chain.devnet.state import DevnetState

Json = dict[str, Any]
TRX_SUN = 1_000_000
DAY_MS = 24 * 3600 * 1000
TOTAL_ENERGY_LIMIT = 180_000_000_000  # mainnet's getTotalEnergyLimit
OTHER_ENERGY_WEIGHT = 18_000_000_000  # TRX: 10 energy per TRX staked
TOTAL_NET_LIMIT = 43_200_000_000  # mainnet's getTotalNetLimit
OTHER_NET_WEIGHT = 43_200_000_000  # TRX: 1 bandwidth point per TRX staked
ENERGY, BANDWIDTH = "ENERGY", "BANDWIDTH"
NAMES = {0: BANDWIDTH, 1: ENERGY}
TRX_TOKEN = "TRX"
STAKE_NET_USAGE_BYTES = 280  # a freeze, delegation or undelegation (signed, with its result)

SCHEMA = """
CREATE TABLE IF NOT EXISTS stakes (
    address TEXT NOT NULL, resource TEXT NOT NULL, frozen_sun INTEGER NOT NULL,
    PRIMARY KEY (address, resource));
CREATE TABLE IF NOT EXISTS delegations (
    owner TEXT NOT NULL, receiver TEXT NOT NULL, resource TEXT NOT NULL,
    balance_sun INTEGER NOT NULL, locked_until_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, receiver, resource));
CREATE TABLE IF NOT EXISTS usage (
    address TEXT NOT NULL, resource TEXT NOT NULL, used INTEGER NOT NULL,
    at_ms INTEGER NOT NULL, PRIMARY KEY (address, resource));
"""


class StakeError(Exception):
    """A stake contract java-tron refuses (CONTRACT_VALIDATE_ERROR, its message)."""


class Stakes:
    """Stake 2.0 bookkeeping on the devnet's connection (the caller holds the transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.executescript(SCHEMA)

    # -- reads

    def frozen(self, address: str, resource: str) -> int:
        row = self.conn.execute("SELECT frozen_sun FROM stakes WHERE address = ? AND"
                                " resource = ?", (address, resource)).fetchone()
        return int(row["frozen_sun"]) if row else 0

    def lent(self, address: str, resource: str) -> int:
        row = self.conn.execute("SELECT COALESCE(SUM(balance_sun), 0) AS s FROM delegations"
                                " WHERE owner = ? AND resource = ?", (address, resource)).fetchone()
        return int(row["s"])

    def acquired(self, address: str, resource: str) -> int:
        row = self.conn.execute("SELECT COALESCE(SUM(balance_sun), 0) AS s FROM delegations"
                                " WHERE receiver = ? AND resource = ?",
                                (address, resource)).fetchone()
        return int(row["s"])

    def delegated(self, owner: str, receiver: str, resource: str) -> tuple[int, int]:
        row = self.conn.execute("SELECT balance_sun, locked_until_ms FROM delegations WHERE"
                                " owner = ? AND receiver = ? AND resource = ?",
                                (owner, receiver, resource)).fetchone()
        return (int(row["balance_sun"]), int(row["locked_until_ms"])) if row else (0, 0)

    def weight(self, address: str, resource: str) -> int:
        """Whole TRX of stake giving this account the resource."""
        return (self.frozen(address, resource) - self.lent(address, resource)
                + self.acquired(address, resource)) // TRX_SUN

    def total_weight(self, resource: str) -> int:
        row = self.conn.execute("SELECT COALESCE(SUM(frozen_sun), 0) AS s FROM stakes"
                                " WHERE resource = ?", (resource,)).fetchone()
        other = OTHER_ENERGY_WEIGHT if resource == ENERGY else OTHER_NET_WEIGHT
        return int(row["s"]) // TRX_SUN + other

    def total_limit(self, resource: str) -> int:
        return TOTAL_ENERGY_LIMIT if resource == ENERGY else TOTAL_NET_LIMIT

    def limit(self, address: str, resource: str) -> int:
        return self.total_limit(resource) * self.weight(address, resource) \
            // self.total_weight(resource)

    def used(self, address: str, resource: str, at_ms: int) -> int:
        """What the account used, recovered linearly over 24 h since it last used any."""
        row = self.conn.execute("SELECT used, at_ms FROM usage WHERE address = ? AND"
                                " resource = ?", (address, resource)).fetchone()
        if row is None:
            return 0
        left = DAY_MS - max(0, at_ms - int(row["at_ms"]))
        return max(0, int(row["used"]) * left // DAY_MS)

    def available(self, address: str, resource: str, at_ms: int) -> int:
        return max(0, self.limit(address, resource) - self.used(address, resource, at_ms))

    def can_delegate_max_sun(self, address: str, resource: str, at_ms: int) -> int:
        """getcandelegatedmaxsize: own stake not lent, less the share its usage holds."""
        own = self.frozen(address, resource) - self.lent(address, resource)
        used = self.used(address, resource, at_ms)
        if used and self.limit(address, resource):
            held = -(-used * self.total_weight(resource) // self.total_limit(resource))
            own -= held * TRX_SUN
        return max(0, own)

    def account_resource(self, address: str, at_ms: int) -> Json:
        """getaccountresource's stake part (java-tron's key names)."""
        out: Json = {
            "TotalEnergyLimit": TOTAL_ENERGY_LIMIT,
            "TotalEnergyWeight": self.total_weight(ENERGY),
            "TotalNetLimit": TOTAL_NET_LIMIT,
            "TotalNetWeight": self.total_weight(BANDWIDTH),
        }
        for key, resource in (("Energy", ENERGY), ("Net", BANDWIDTH)):
            limit, used = self.limit(address, resource), self.used(address, resource, at_ms)
            if limit:
                out[f"{key}Limit"] = limit
            if used:
                out[f"{key}Used"] = used
        return out

    def account_fields(self, address: str) -> Json:
        """getaccount's Stake 2.0 fields."""
        out: Json = {"frozenV2": [
            {"amount": self.frozen(address, BANDWIDTH)} if self.frozen(address, BANDWIDTH)
            else {},
            {"type": ENERGY, "amount": self.frozen(address, ENERGY)}
            if self.frozen(address, ENERGY) else {"type": ENERGY},
        ]}
        res: Json = {}
        for suffix, resource in (("energy", ENERGY), ("bandwidth", BANDWIDTH)):
            if self.lent(address, resource):
                res[f"delegated_frozenV2_balance_for_{suffix}"] = self.lent(address, resource)
            if self.acquired(address, resource):
                res[f"acquired_delegated_frozenV2_balance_for_{suffix}"] = \
                    self.acquired(address, resource)
        if res:
            out["account_resource"] = res
        return out

    # -- checks (at broadcast and again at execution)

    def check_freeze(self, owner: str, value: Json, balance_sun: int) -> tuple[int, str]:
        amount = int(value.get("frozen_balance") or 0)
        resource = _resource(value)
        if amount <= 0:
            raise StakeError("frozenBalance must be positive")
        if amount < TRX_SUN:
            raise StakeError("frozenBalance must be greater than or equal to 1 TRX")
        if amount > balance_sun:
            raise StakeError("frozenBalance must be less than or equal to accountBalance")
        return amount, resource

    def check_delegate(self, owner: str, value: Json, receiver_exists: bool,
                       at_ms: int) -> tuple[str, int, str]:
        receiver, amount, resource = _common(value)
        if amount < TRX_SUN:
            raise StakeError("delegateBalance must be greater than or equal to 1 TRX")
        if amount > self.can_delegate_max_sun(owner, resource, at_ms):
            kind = "FreezeEnergyV2" if resource == ENERGY else "FreezeBandwidthV2"
            raise StakeError(f"delegateBalance must be less than or equal to available {kind} "
                             "balance")
        if receiver == owner:
            raise StakeError("receiverAddress must not be the same as ownerAddress")
        if not receiver_exists:
            raise StakeError(f"Account[{receiver}] not exists")
        return receiver, amount, resource

    def check_undelegate(self, owner: str, value: Json, at_ms: int) -> tuple[str, int, str]:
        receiver, amount, resource = _common(value)
        if receiver == owner:
            raise StakeError("receiverAddress must not be the same as ownerAddress")
        if amount <= 0:
            raise StakeError("unDelegateBalance must be more than 0 TRX")
        have, locked_until = self.delegated(owner, receiver, resource)
        if have == 0:
            raise StakeError("delegated Resource does not exist")
        free = have if locked_until <= at_ms else 0
        if free < amount:
            kind = "Energy" if resource == ENERGY else "Bandwidth"
            raise StakeError(f"insufficient delegatedFrozenBalance({kind}), request={amount}, "
                             f"unlock_balance={free}")
        return receiver, amount, resource

    # -- changes (at execution)

    def freeze(self, owner: str, amount: int, resource: str) -> None:
        self.conn.execute(
            "INSERT INTO stakes (address, resource, frozen_sun) VALUES (?, ?, ?)"
            " ON CONFLICT (address, resource) DO UPDATE SET frozen_sun = frozen_sun"
            " + excluded.frozen_sun", (owner, resource, amount))

    def delegate(self, owner: str, receiver: str, amount: int, resource: str,
                 locked_until_ms: int) -> None:
        self.conn.execute(
            "INSERT INTO delegations (owner, receiver, resource, balance_sun, locked_until_ms)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, receiver, resource) DO UPDATE SET"
            " balance_sun = balance_sun + excluded.balance_sun,"
            " locked_until_ms = MAX(locked_until_ms, excluded.locked_until_ms)",
            (owner, receiver, resource, amount, locked_until_ms))

    def undelegate(self, owner: str, receiver: str, amount: int, resource: str,
                   at_ms: int) -> None:
        """Takes the lent share back; the receiver's usage of that share moves to the owner."""
        before = self.limit(receiver, resource)
        used = self.used(receiver, resource, at_ms)
        self.conn.execute(
            "UPDATE delegations SET balance_sun = balance_sun - ? WHERE owner = ? AND"
            " receiver = ? AND resource = ?", (amount, owner, receiver, resource))
        self.conn.execute("DELETE FROM delegations WHERE balance_sun <= 0")
        after = self.limit(receiver, resource)
        if used and before:
            moved = used * (before - after) // before
            self._set_used(receiver, resource, used - moved, at_ms)
            self._set_used(owner, resource, self.used(owner, resource, at_ms) + moved, at_ms)

    def use(self, address: str, resource: str, amount: int, at_ms: int) -> None:
        if amount:
            self._set_used(address, resource, self.used(address, resource, at_ms) + amount,
                           at_ms)

    def _set_used(self, address: str, resource: str, used: int, at_ms: int) -> None:
        self.conn.execute(
            "INSERT INTO usage (address, resource, used, at_ms) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (address, resource) DO UPDATE SET used = excluded.used,"
            " at_ms = excluded.at_ms", (address, resource, max(0, used), at_ms))


def _resource(value: Json) -> str:
    try:
        code = resource_code(value.get("resource"))
    except ValueError as exc:
        raise StakeError(str(exc)) from None
    if code not in NAMES:
        raise StakeError("ResourceCode error, valid ResourceCode[BANDWIDTH、ENERGY]")
    return NAMES[code]


def _common(value: Json) -> tuple[str, int, str]:
    try:
        receiver = to_base58(str(value["receiver_address"]))
    except (KeyError, ValueError):
        raise StakeError("Invalid receiverAddress") from None
    return receiver, int(value.get("balance") or 0), _resource(value)


# -- the three contracts, checked at broadcast and executed in a block (DevnetState calls)

def check_stake(state: DevnetState, ctype: str, owner: str, value: Json, at_ms: int) -> None:
    if ctype == "FreezeBalanceV2Contract":
        state.stakes.check_freeze(owner, value, state.balance(owner, TRX_TOKEN))
    elif ctype == "DelegateResourceContract":
        receiver = to_base58(str(value.get("receiver_address") or owner))
        state.stakes.check_delegate(owner, value, state.account_exists(receiver), at_ms)
    else:
        state.stakes.check_undelegate(owner, value, at_ms)

def execute_stake(state: DevnetState, ctype: str, owner: str, value: Json, info: Json,
                   t: int) -> Json | None:
    """A freeze, delegation or undelegation: its bandwidth, then the stake moved; None
    (dropped) when it is no longer valid."""
    free, net_fee = state.net_fee(owner, STAKE_NET_USAGE_BYTES, t)
    try:
        if ctype == "FreezeBalanceV2Contract":
            amount, resource = state.stakes.check_freeze(
                owner, value, state.balance(owner, TRX_TOKEN) - net_fee)
        elif ctype == "DelegateResourceContract":
            receiver = to_base58(str(value.get("receiver_address") or owner))
            receiver, amount, resource = state.stakes.check_delegate(
                owner, value, state.account_exists(receiver), t)
        else:
            receiver, amount, resource = state.stakes.check_undelegate(owner, value, t)
    except StakeError:
        return None
    if state.balance(owner, TRX_TOKEN) < net_fee:
        return None
    if free:
        state.use_net(owner, free, t)
    state.add(owner, TRX_TOKEN, -net_fee)
    if ctype == "FreezeBalanceV2Contract":
        state.add(owner, TRX_TOKEN, -amount)
        state.stakes.freeze(owner, amount, resource)
    elif ctype == "DelegateResourceContract":
        period_ms = int(value.get("lock_period") or 86_400) * 3000  # blocks of 3 s
        locked = t + period_ms if value.get("lock") else 0
        state.stakes.delegate(owner, receiver, amount, resource, locked)
    else:
        state.stakes.undelegate(owner, receiver, amount, resource, t)
    info["receipt"] = ({"net_usage": STAKE_NET_USAGE_BYTES} if free
                       else {"net_fee": net_fee})
    if net_fee:
        info["fee"] = net_fee
    return info
