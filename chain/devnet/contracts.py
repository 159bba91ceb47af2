"""The contracts the devnet runs, as mainnet charges for them: a TRX transfer
(TransferContract, which activates a new account) and a call to the USDT token
(TriggerSmartContract: its `transfer`), plus the dispatch to the three Stake 2.0 contracts
(chain/devnet/stake.py). For each, the checks of a broadcast (java-tron's codes and
messages, raised as Refused) and the execution when its block is made: bandwidth (staked,
else free, else burnt), energy (staked, else burnt up to fee_limit) and the balances moved.
A USDT transfer burns energy as mainnet's does (64,285 energy to a holder, 130,285 to a
fresh address, at 100 sun unless a test sets another price) and ends OUT_OF_ENERGY when its
fee_limit cannot pay for it. The state itself (balances, bandwidth used, stakes) is
chain/devnet/state.py's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from meterchat.chain.address import to_base58, to_raw20
from meterchat.chain.devnet import proto
from meterchat.chain.devnet.abi import SELECTOR_TRANSFER, address_word, hexmsg, word
from meterchat.chain.devnet.stake import (
    ENERGY,
    STAKE_NET_USAGE_BYTES,
    StakeError,
    check_stake,
    execute_stake,
)
from meterchat.chain.gateway import TRANSFER_TOPIC

if TYPE_CHECKING:
    from meterchat.chain.devnet.state import DevnetState, Json

# Mainnet's prices and costs, and java-tron's limits.
ENERGY_PRICE_SUN = 100
ENERGY_TO_HOLDER = 64_285
ENERGY_TO_FRESH = 130_285
ENERGY_REVERT = 29_631
NET_USAGE_BYTES = 345
TRX_TRANSFER_NET_USAGE_BYTES = 268
NET_PRICE_SUN = 1_000  # per byte of bandwidth burned
CREATE_ACCOUNT_FEE_SUN = 1_000_000  # getCreateNewAccountFeeInSystemContract
CREATE_ACCOUNT_NET_FEE_SUN = 100_000  # getCreateAccountFee (its bandwidth)
MAX_FEE_LIMIT_SUN = 15_000 * 1_000_000
# The two tokens a balance is kept in.
TRX_TOKEN = "TRX"
USDT_TOKEN = "USDT"


class Refused(Exception):
    """A broadcast the node refuses, with java-tron's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_contract(state: DevnetState, ctype: str, value: Json, raw: Json, owner: str,
                   at_ms: int) -> None:
    """The checks of a broadcast's contract, before it is accepted: raises Refused."""
    if ctype == "TransferContract":
        to = to_base58(value["to_address"])
        amount = int(value.get("amount") or 0)
        if amount <= 0:
            raise Refused("CONTRACT_VALIDATE_ERROR", "Amount must be greater than 0.")
        if to == owner:
            raise Refused("CONTRACT_VALIDATE_ERROR", "Cannot transfer TRX to yourself.")
        if not state.account_exists(owner):
            raise Refused("CONTRACT_VALIDATE_ERROR", "Validate TransferContract error, "
                          "no OwnerAccount.")
        fee = (CREATE_ACCOUNT_FEE_SUN + CREATE_ACCOUNT_NET_FEE_SUN
               if not state.account_exists(to) else
               state.net_fee(owner, TRX_TRANSFER_NET_USAGE_BYTES, at_ms)[1])
        if state.balance(owner, TRX_TOKEN) < amount + fee:
            raise Refused("CONTRACT_VALIDATE_ERROR", "balance is not sufficient.")
    elif ctype == "TriggerSmartContract":
        if to_base58(value["contract_address"]) != state.meta("usdt_contract"):
            raise Refused("CONTRACT_VALIDATE_ERROR", "No contract or not a smart contract")
        fee_limit = int(raw.get("fee_limit") or 0)
        if fee_limit < 0 or fee_limit > MAX_FEE_LIMIT_SUN:
            raise Refused("CONTRACT_VALIDATE_ERROR", "feeLimit must be >= 0 and <= 15000 TRX")
        if not state.account_exists(owner):
            raise Refused("CONTRACT_VALIDATE_ERROR", "Validate TriggerSmartContract error, "
                          "no OwnerAccount.")
        burn = state.net_fee(owner, NET_USAGE_BYTES, at_ms)[1]
        if burn and state.balance(owner, TRX_TOKEN) < burn:
            raise Refused("BANDWITH_ERROR", "Account resource insufficient error.")
    elif ctype in proto.STAKE_CONTRACTS:
        if not state.account_exists(owner):
            raise Refused("CONTRACT_VALIDATE_ERROR", f"Account[{owner}] not exists")
        try:
            check_stake(state, ctype, owner, value, at_ms)
        except StakeError as exc:
            raise Refused("CONTRACT_VALIDATE_ERROR", str(exc)) from None
        burn = state.net_fee(owner, STAKE_NET_USAGE_BYTES, at_ms)[1]
        if burn and state.balance(owner, TRX_TOKEN) < burn:
            raise Refused("BANDWITH_ERROR", "Account resource insufficient error.")
    else:
        raise Refused("CONTRACT_VALIDATE_ERROR", f"contract type {ctype} is not supported "
                      "on the devnet")


def execute_contract(state: DevnetState, tx: Json, num: int, t: int) -> Json | None:
    """Apply one transaction to the balances; its receipt, or None when it can no longer
    be applied and is dropped. Sets the transaction's `ret`."""
    raw = tx["raw_data"]
    contract = raw["contract"][0]
    value = contract["parameter"]["value"]
    owner = value["owner_address"]
    info: Json = {"id": tx["txID"], "blockNumber": num, "blockTimeStamp": t}
    if contract["type"] in proto.STAKE_CONTRACTS:
        done = execute_stake(state, contract["type"], owner, value, info, t)
        if done is not None:
            tx["ret"] = [{"contractRet": "SUCCESS"}]
        return done
    if contract["type"] == "TransferContract":
        return _execute_transfer(state, tx, owner, value, info, t)
    return _execute_usdt_call(state, tx, owner, value, info, t)


def _execute_transfer(state: DevnetState, tx: Json, owner: str, value: Json, info: Json,
                      t: int) -> Json | None:
    """A TRX transfer: activates the receiver (the sender pays for it) or uses bandwidth."""
    amount = int(value["amount"])
    receiver = str(value["to_address"])
    receipt: Json
    if not state.account_exists(receiver):  # activation: the sender pays for it
        free, fee = 0, CREATE_ACCOUNT_FEE_SUN + CREATE_ACCOUNT_NET_FEE_SUN
        receipt = {"net_fee": CREATE_ACCOUNT_NET_FEE_SUN}
    else:
        free, fee = state.net_fee(owner, TRX_TRANSFER_NET_USAGE_BYTES, t)
        receipt = ({"net_usage": TRX_TRANSFER_NET_USAGE_BYTES} if free
                   else {"net_fee": fee})
    if state.balance(owner, TRX_TOKEN) < amount + fee:
        return None
    if free:
        state.use_net(owner, free, t)
    state.add(owner, TRX_TOKEN, -(amount + fee))
    state.add(receiver, TRX_TOKEN, amount)
    state.activate(receiver, t)
    tx["ret"] = [{"contractRet": "SUCCESS"}]
    info["receipt"] = receipt
    if fee:
        info["fee"] = fee
    return info


def _execute_usdt_call(state: DevnetState, tx: Json, owner: str, value: Json, info: Json,
                       t: int) -> Json | None:
    """A call to the USDT token: bandwidth (staked, else free, else burnt), then energy
    (staked, else burnt as TRX from the owner up to fee_limit); only `transfer` moves
    USDT, anything else reverts."""
    raw = tx["raw_data"]
    free_net, net_fee = state.net_fee(owner, NET_USAGE_BYTES, t)
    if state.balance(owner, TRX_TOKEN) < net_fee:
        return None
    if free_net:
        state.use_net(owner, free_net, t)
    state.add(owner, TRX_TOKEN, -net_fee)
    usdt = value["contract_address"]
    data = str(value.get("data") or "")
    budget_sun = min(int(raw.get("fee_limit") or 0), state.balance(owner, TRX_TOKEN))
    to: str | None = None
    amount = 0
    if data[:8] == SELECTOR_TRANSFER and len(data) == 8 + 128:
        try:
            to = to_base58(data[8 + 24:8 + 64])
            amount = int(data[72:136], 16)
        except ValueError:
            to = None
    energy = state.usdt_transfer_energy(to) if to else ENERGY_TO_FRESH
    price = state.energy_price_sun()
    staked = state.stakes.available(owner, ENERGY, t)  # used before any TRX is burnt
    budget_sun += min(staked, energy) * price
    result, message, logs = "SUCCESS", "", []
    if to is None:
        energy, result, message = ENERGY_REVERT, "REVERT", "REVERT opcode executed"
    elif budget_sun < energy * price:
        energy = budget_sun // price
        result = "OUT_OF_ENERGY"
        message = "Not enough energy for 'SSTORE' operation executing: curInvokeEnergyLimit"
    elif state.balance(owner, USDT_TOKEN) < amount:
        energy, result, message = ENERGY_REVERT, "REVERT", "REVERT opcode executed"
    else:
        state.add(owner, USDT_TOKEN, -amount)
        state.add(to, USDT_TOKEN, amount)
        logs = [{
            "address": usdt,
            "topics": [TRANSFER_TOPIC, address_word(to_raw20(owner)),
                       address_word(to_raw20(to))],
            "data": word(amount),
        }]
    from_stake = min(staked, energy)
    state.stakes.use(owner, ENERGY, from_stake, t)
    fee = max(0, min((energy - from_stake) * price, budget_sun - from_stake * price))
    state.add(owner, TRX_TOKEN, -fee)
    tx["ret"] = [{"contractRet": result}]
    net: Json = {"net_usage": NET_USAGE_BYTES} if free_net else {"net_fee": net_fee}
    info.update({
        "fee": fee + net_fee,
        # Tether's transfer() returns false even when it succeeds (a known trap).
        "contractResult": [word(0) if result == "SUCCESS" else ""],
        "contract_address": usdt,
        "receipt": {"energy_fee": fee, "energy_usage_total": energy, **net,
                    **({"energy_usage": from_stake} if from_stake else {}),
                    "result": result},
    })
    if logs:
        info["log"] = logs
    if result != "SUCCESS":
        info["result"] = "FAILED"
        info["resMessage"] = hexmsg(message)
    return info
