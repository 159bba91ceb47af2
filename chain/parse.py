"""Reading a full node's JSON answers into the gateway's dataclasses, pure and without I/O, so
it is proven on recorded mainnet answers (tests/fixtures/mainnet/).

Works with both address forms a node may answer with: base58 (`"visible": true`, what tronpy
asks for) and hex (41-prefixed in transactions, bare 20-byte in log addresses).
"""

from __future__ import annotations

from typing import Any

from meterchat.chain.address import to_base58
from meterchat.chain.gateway import (
    RESULT_SUCCESS,
    TRANSFER_TOPIC,
    BlockTransfers,
    BroadcastResult,
    ChainTx,
    TransferLog,
)

# A node's JSON answer (an object).
Json = dict[str, Any]


class ParseError(ValueError):
    """A node answer that does not have the shape of a TRON answer."""


def _addr(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return to_base58(value)
    except ValueError as exc:
        raise ParseError(f"bad address in node answer: {value!r}") from exc


def _strip0x(text: str) -> str:
    return text[2:] if text.startswith("0x") else text


def transfer_logs(txid: str, info: Json) -> tuple[TransferLog, ...]:
    """Every well-formed TRC20 Transfer log of a receipt, with its index in the receipt."""
    out = []
    for index, log in enumerate(info.get("log") or []):
        topics = [_strip0x(str(t)).lower() for t in log.get("topics") or []]
        data = _strip0x(str(log.get("data") or ""))
        # An indexed `value` (non-standard tokens) or extra topics is not a standard
        # Transfer; such logs never count as USDT.
        if len(topics) != 3 or topics[0] != TRANSFER_TOPIC or len(data) != 64:
            continue
        try:
            amount = int(data, 16)
        except ValueError as exc:
            raise ParseError("bad Transfer log data") from exc
        out.append(
            TransferLog(
                txid=txid,
                log_index=index,
                contract=_addr(log.get("address")) or "",
                from_address=_addr(topics[1]) or "",
                to_address=_addr(topics[2]) or "",
                amount=amount,
            )
        )
    return tuple(out)


def receipt_result(tx: Json, info: Json) -> str | None:
    """SUCCESS / REVERT / OUT_OF_ENERGY / ... of a transaction in a block; None before.

    Smart-contract calls carry it in the receipt; plain TRX transfers only in `ret`.
    """
    if not info:
        return None
    receipt = info.get("receipt") or {}
    if receipt.get("result"):
        return str(receipt["result"])
    if info.get("result") == "FAILED":
        return "FAILED"
    ret = tx.get("ret") or []
    if ret and ret[0].get("contractRet"):
        return str(ret[0]["contractRet"])
    return RESULT_SUCCESS


def parse_transaction(tx: Json, info: Json, solidified_head: int | None) -> ChainTx | None:
    """A `gettransactionbyid` + `gettransactioninfobyid` pair -> ChainTx; None when the node
    knows neither (both answer `{}`)."""
    if not tx and not info:
        return None
    txid = str(tx.get("txID") or info.get("id") or "").lower()
    if len(txid) != 64:
        raise ParseError("node answer has no transaction id")
    contract_type = ""
    owner = called = trx_to = None
    trx_amount = 0
    contracts = (tx.get("raw_data") or {}).get("contract") or []
    if contracts:
        c = contracts[0]
        contract_type = str(c.get("type") or "")
        value = (c.get("parameter") or {}).get("value") or {}
        owner = _addr(value.get("owner_address"))
        if contract_type == "TriggerSmartContract":
            called = _addr(value.get("contract_address"))
        elif contract_type == "TransferContract":
            trx_to = _addr(value.get("to_address"))
            trx_amount = int(value.get("amount") or 0)
    in_block = bool(info) and info.get("blockNumber") is not None
    block_number = int(info["blockNumber"]) if in_block else None
    receipt = info.get("receipt") or {}
    return ChainTx(
        txid=txid,
        contract_type=contract_type,
        owner_address=owner,
        called_contract=called,
        trx_to_address=trx_to,
        trx_amount_sun=trx_amount,
        in_block=in_block,
        result=receipt_result(tx, info) if in_block else None,
        block_number=block_number,
        block_time_ms=int(info["blockTimeStamp"]) if in_block and "blockTimeStamp" in info
        else None,
        solidified=(
            block_number is not None and solidified_head is not None
            and block_number <= solidified_head
        ),
        fee_sun=int(info.get("fee") or 0),
        energy_used=int(receipt.get("energy_usage_total") or 0),
        transfers=transfer_logs(txid, info) if in_block else (),
    )


def parse_block_transfers(block_number: int, infos: list[Json], contract: str) -> BlockTransfers:
    """A `gettransactioninfobyblocknum` answer -> the successful Transfer logs of
    `contract` in that block."""
    if not isinstance(infos, list):
        raise ParseError("gettransactioninfobyblocknum did not answer a list")
    found: list[TransferLog] = []
    block_time = None
    for info in infos:
        if int(info.get("blockNumber", block_number)) != block_number:
            raise ParseError("node answered receipts of another block")
        block_time = int(info["blockTimeStamp"]) if "blockTimeStamp" in info else block_time
        if receipt_result({}, info) != RESULT_SUCCESS:
            continue
        txid = str(info.get("id") or "").lower()
        found.extend(t for t in transfer_logs(txid, info) if t.contract == contract)
    return BlockTransfers(block_number, block_time, tuple(found))


def parse_block_number(node_info: Json, key: str) -> int:
    """`"Num:123,ID:..."` of getnodeinfo's `block` / `solidityBlock` -> 123."""
    text = str(node_info.get(key) or "")
    if not text.startswith("Num:"):
        raise ParseError(f"getnodeinfo has no {key}")
    return int(text.split(",", 1)[0][4:])


def parse_broadcast(payload: Json) -> BroadcastResult:
    if payload.get("result") is True:
        return BroadcastResult(True, "SUCCESS", "")
    if payload.get("code"):
        code = str(payload["code"])
    else:
        code = "ERROR" if payload.get("Error") else "UNKNOWN"
    raw = str(payload.get("message") or payload.get("Error") or "")
    try:
        message = bytes.fromhex(raw).decode("utf-8", "replace")
    except ValueError:
        message = raw
    return BroadcastResult(False, code, message)


def _check_constant_call(answer: Any, failed: str) -> None:
    """A ParseError unless triggerconstantcontract ran the call (`failed` says what a
    transaction marked FAILED means to the caller)."""
    if not isinstance(answer, dict):
        raise ParseError("triggerconstantcontract answered no object")
    result = answer.get("result")
    if not isinstance(result, dict) or result.get("result") is not True:
        message = result.get("message", "") if isinstance(result, dict) else ""
        try:
            message = bytes.fromhex(str(message)).decode("utf-8", "replace")
        except ValueError:
            pass
        raise ParseError(f"triggerconstantcontract refused the call: {message}"[:300])
    rets = (answer.get("transaction") or {}).get("ret") or [{}]
    if isinstance(rets, list) and rets and isinstance(rets[0], dict) \
            and rets[0].get("ret") == "FAILED":
        raise ParseError(f"triggerconstantcontract: {failed}")


def parse_constant_energy(answer: Any) -> int:
    """triggerconstantcontract's answer -> the energy the call used. A call that fails (a
    validation error, a revert) has no energy figure worth quoting."""
    _check_constant_call(answer, "the call would fail")
    energy = answer.get("energy_used")
    if isinstance(energy, bool) or not isinstance(energy, int) or energy <= 0:
        raise ParseError("triggerconstantcontract answered no energy_used")
    return energy


def parse_constant_uint(answer: Any) -> int:
    """triggerconstantcontract's answer to a view returning one uint256 (`balanceOf`) -> it.
    A refused or reverted call, or a result that is not one 32-byte word, is a ParseError."""
    _check_constant_call(answer, "the call failed")
    words = answer.get("constant_result")
    if not isinstance(words, list) or not words or not isinstance(words[0], str) \
            or len(words[0]) != 64:
        raise ParseError("triggerconstantcontract answered no 32-byte result")
    try:
        return int(words[0], 16)
    except ValueError as exc:
        raise ParseError("triggerconstantcontract answered a result that is not hex") from exc


def parse_chain_parameter(answer: Any, key: str) -> int:
    """getchainparameters' `{"chainParameter": [{"key": ..., "value": ...}, ...]}` -> the
    value of `key` (java-tron leaves a zero value out: then 0)."""
    params = answer.get("chainParameter") if isinstance(answer, dict) else None
    if not isinstance(params, list):
        raise ParseError("getchainparameters answered no chainParameter list")
    for p in params:
        if isinstance(p, dict) and p.get("key") == key:
            value = p.get("value", 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ParseError(f"getchainparameters: {key} is not a number")
            return value
    raise ParseError(f"getchainparameters has no {key}")
