"""The devnet's Stake 2.0 wallet endpoints, as java-tron answers them: `freezebalancev2`,
`delegateresource` and `undelegateresource` build an unsigned transaction (raw_data, its
raw_data_hex and txID computed by chain/devnet/proto.py, so a client signing the txID
broadcasts bytes the node verifies) or answer `{"Error": ...}` with java-tron's validation
message; `getaccountresource` and `getcandelegatedmaxsize` read the stake
(chain/devnet/stake.py)."""

from __future__ import annotations

from meterchat.chain.address import to_base58, to_hex41
from meterchat.chain.devnet import proto
from meterchat.chain.devnet.stake import NAMES, StakeError, check_stake
from meterchat.chain.devnet.state import (
    FREE_NET_PER_DAY,
    DevnetState,
    Json,
    now_ms,
)

VALIDATE = "class org.tron.core.exception.ContractValidateException : "


def build(state: DevnetState, ctype: str, body: Json) -> Json:
    """An unsigned `ctype` transaction from java-tron's HTTP body (hex or, with visible,
    base58 addresses; resource by name)."""
    try:
        owner = to_base58(str(body["owner_address"]))
        value: Json = {"owner_address": to_hex41(owner)}
        resource = NAMES[proto.resource_code(body.get("resource"))]
        if ctype == "FreezeBalanceV2Contract":
            value.update(frozen_balance=int(body.get("frozen_balance") or 0),
                         resource=resource)
        else:
            value.update(receiver_address=to_hex41(to_base58(str(body["receiver_address"]))),
                         balance=int(body.get("balance") or 0), resource=resource)
            if ctype == "DelegateResourceContract":
                value["lock"] = bool(body.get("lock"))
                if body.get("lock_period"):
                    value["lock_period"] = int(body["lock_period"])
    except (KeyError, TypeError, ValueError) as exc:
        return {"Error": f"{VALIDATE}{exc}"}
    if not state.account_exists(owner):
        return {"Error": f"{VALIDATE}Account[{owner}] not exists"}
    try:
        check_stake(state, ctype, owner, value, now_ms())
    except StakeError as exc:
        return {"Error": f"{VALIDATE}{exc}"}
    solid = state.solid_block()
    t = now_ms()
    raw: Json = {
        "contract": [{"parameter": {"value": value,
                                    "type_url": f"type.googleapis.com/protocol.{ctype}"},
                      "type": ctype}],
        "ref_block_bytes": solid.id[12:16], "ref_block_hash": solid.id[16:32],
        "expiration": t + 60_000, "timestamp": t,
    }
    return {"visible": False, "txID": proto.txid_of(raw), "raw_data": raw,
            "raw_data_hex": proto.raw_data_bytes(raw).hex()}


def account_resource(state: DevnetState, body: Json) -> Json:
    """getaccountresource: free and staked bandwidth, staked energy, the network's totals."""
    address = to_base58(str(body.get("address", "")))
    if not state.account_exists(address):
        return {}
    t = now_ms()
    out: Json = {"freeNetLimit": FREE_NET_PER_DAY}
    used = FREE_NET_PER_DAY - state.free_net_left(address, t)
    if used:
        out["freeNetUsed"] = used
    out.update(state.stakes.account_resource(address, t))
    return out


def can_delegate_max_size(state: DevnetState, body: Json) -> Json:
    """getcandelegatedmaxsize: type 0 bandwidth, 1 energy; the most sun of stake to lend."""
    address = to_base58(str(body.get("owner_address", "")))
    resource = NAMES[proto.resource_code(int(body.get("type") or 0))]
    size = state.stakes.can_delegate_max_sun(address, resource, now_ms())
    return {"max_size": size} if size else {}


__all__ = ["account_resource", "build", "can_delegate_max_size"]
