"""The devnet's protobuf encoding of a transaction's raw data, for the contract types tronpy's
bundled protobuf does not know: Stake 2.0's FreezeBalanceV2Contract, DelegateResourceContract
and UnDelegateResourceContract (java-tron's core/contract/balance_contract.proto), encoded by
hand with a tiny varint / length-delimited encoder and wrapped in tronpy's own
Transaction.raw (whose ContractType enum knows them). TransferContract and
TriggerSmartContract go through tronpy's encoder as before.

The TXID is sha256 of these bytes, so a transaction tronpy signs (it signs the txID the node's
getsignweight answers) verifies the same way at broadcast."""

from __future__ import annotations

import hashlib
from typing import Any

from meterchat.chain.address import to_raw20

Json = dict[str, Any]

# Transaction.Contract.ContractType's numbers (java-tron's core/Tron.proto).
STAKE_CONTRACTS = {"FreezeBalanceV2Contract": 54, "DelegateResourceContract": 57,
                   "UnDelegateResourceContract": 58}
RESOURCES = {"BANDWIDTH": 0, "ENERGY": 1, "TRON_POWER": 2}


def varint(n: int) -> bytes:
    """A protobuf varint; a negative int64 as its 64-bit two's complement (10 bytes)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    """A varint field (wire type 0); proto3 leaves out a zero."""
    return varint(number << 3) + varint(value) if value else b""


def field_bytes(number: int, value: bytes) -> bytes:
    """A length-delimited field (wire type 2); proto3 leaves out an empty one."""
    return varint(number << 3 | 2) + varint(len(value)) + value if value else b""


def resource_code(value: Any) -> int:
    """"ENERGY" / "BANDWIDTH" (or their numbers) as ResourceCode; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("resource must be BANDWIDTH or ENERGY")
    if isinstance(value, int) and value in RESOURCES.values():
        return value
    if value is None:
        return 0  # proto3's default: BANDWIDTH
    if isinstance(value, str) and value in RESOURCES:
        return RESOURCES[value]
    raise ValueError(f"ResourceCode error, valid ResourceCode[BANDWIDTH、ENERGY、TRON_POWER], "
                     f"not {value!r}")


def contract_bytes(ctype: str, value: Json) -> bytes:
    """One stake contract's message, field by field as balance_contract.proto numbers them."""
    owner = field_bytes(1, to_raw20_41(value["owner_address"]))
    if ctype == "FreezeBalanceV2Contract":
        # owner_address = 1; frozen_balance = 2; resource = 3
        return (owner + field_varint(2, int(value.get("frozen_balance") or 0))
                + field_varint(3, resource_code(value.get("resource"))))
    if ctype in ("DelegateResourceContract", "UnDelegateResourceContract"):
        # owner_address = 1; resource = 2; balance = 3; receiver_address = 4;
        # (delegate only) lock = 5; lock_period = 6
        out = (owner + field_varint(2, resource_code(value.get("resource")))
               + field_varint(3, int(value.get("balance") or 0))
               + field_bytes(4, to_raw20_41(value["receiver_address"])))
        if ctype == "DelegateResourceContract":
            out += field_varint(5, 1 if value.get("lock") else 0)
            out += field_varint(6, int(value.get("lock_period") or 0))
        return out
    raise ValueError(f"Unsupported contract type: {ctype}")


def to_raw20_41(address: Any) -> bytes:
    """An address (base58 or 41-hex) as the 21 bytes java-tron stores (0x41 + 20)."""
    return b"\x41" + to_raw20(str(address))


def raw_data_bytes(raw: Json) -> bytes:
    """raw_data serialized as java-tron serializes Transaction.raw."""
    contracts = raw["contract"]
    if not any(c["type"] in STAKE_CONTRACTS for c in contracts):
        # tronpy (and protobuf) only here: serving never needs them before a broadcast.
        from tronpy.proto.transaction import _raw_data_to_protobuf

        return bytes(_raw_data_to_protobuf(raw).SerializeToString())
    if len(contracts) != 1:
        raise ValueError("exactly one contract per transaction")
    c = contracts[0]
    # Contract: type = 1; parameter = 2 (google.protobuf.Any: type_url = 1; value = 2).
    parameter = (field_bytes(1, str(c["parameter"]["type_url"]).encode())
                 + field_bytes(2, contract_bytes(c["type"], c["parameter"]["value"])))
    contract = field_varint(1, STAKE_CONTRACTS[c["type"]]) + field_bytes(2, parameter)
    # Transaction.raw: ref_block_bytes = 1; ref_block_hash = 4; expiration = 8; data = 10;
    # contract = 11; timestamp = 14 (fee_limit = 18 is for smart contracts only).
    return (field_bytes(1, bytes.fromhex(raw["ref_block_bytes"]))
            + field_bytes(4, bytes.fromhex(raw["ref_block_hash"]))
            + field_varint(8, int(raw["expiration"]))
            + field_bytes(10, bytes.fromhex(raw.get("data") or ""))
            + field_bytes(11, contract)
            + field_varint(14, int(raw["timestamp"])))


def txid_of(raw: Json) -> str:
    return hashlib.sha256(raw_data_bytes(raw)).hexdigest()
