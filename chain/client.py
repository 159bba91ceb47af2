"""The ChainGateway over tronpy: `AsyncTron` with an `AsyncHTTPProvider` pointed at the
configured full node (the embedded devnet or a real network), the API key header from the
environment variable named in config, explicit timeouts.

Reads go through the provider's `make_request` (the same HTTP calls tronpy makes) and are
read by chain/parse.py; building and signing a USDT transfer uses tronpy's contract objects.
Every transport failure becomes `ChainUnavailable`.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

import httpx
from tronpy import AsyncTron
from tronpy import exceptions as tronpy_errors
from tronpy.async_contract import AsyncContract
from tronpy.keys import PrivateKey
from tronpy.providers.async_http import AsyncHTTPProvider

from meterchat.chain import parse
from meterchat.chain.address import is_valid_address, to_raw20
from meterchat.chain.gateway import (
    AccountResource,
    BadTransaction,
    BlockTransfers,
    BroadcastResult,
    ChainTx,
    ChainUnavailable,
    SignedTransfer,
    TxLookup,
)

API_KEY_HEADER = "TRON-PRO-API-KEY"
# getcandelegatedmaxsize's `type` per Stake 2.0 resource.
RESOURCE_TYPES = {"BANDWIDTH": 0, "ENERGY": 1}
# What tronpy raises for answers it does not like (many are ValueError subclasses).
TRONPY_ERRORS = (
    ValueError, tronpy_errors.UnknownError, tronpy_errors.TransactionError,
    tronpy_errors.TvmError, tronpy_errors.ValidationError, tronpy_errors.ApiError,
    tronpy_errors.BugInJavaTron, KeyError, TypeError,
)


@dataclass(frozen=True)
class ClientSettings:
    endpoint: str
    usdt_contract: str
    timeout_s: float = 10.0
    api_key_env: str = ""


class TronClient:
    """ChainGateway implementation. One instance per app; `close()` releases its HTTP pool."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        headers = {}
        api_key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        if api_key:
            headers[API_KEY_HEADER] = api_key
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s), headers=headers, trust_env=False
        )
        endpoint = settings.endpoint if settings.endpoint.endswith("/") else settings.endpoint + "/"
        self._provider = AsyncHTTPProvider(endpoint, timeout=settings.timeout_s, client=http)
        # tronpy would otherwise add one of its built-in shared TronGrid keys on trongrid
        # hosts; we send only the operator's own key (set on the HTTP client above).
        self._provider.use_api_key = False
        self.tron = AsyncTron(
            self._provider, conf={"timeout": settings.timeout_s, "fee_limit": 40_000_000}
        )
        self._usdt: AsyncContract | None = None
        self._usdt_lock = asyncio.Lock()

    async def _request(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return await self._provider.make_request(path, params or {})
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc

    async def _node_info(self) -> dict[str, Any]:
        info = await self._request("wallet/getnodeinfo")
        if not isinstance(info, dict):
            raise ChainUnavailable("wallet/getnodeinfo answered no object")
        return info

    async def solidified_block_number(self) -> int:
        try:
            return parse.parse_block_number(await self._node_info(), "solidityBlock")
        except parse.ParseError as exc:
            raise ChainUnavailable(str(exc)) from exc

    async def head_block_number(self) -> int:
        try:
            return parse.parse_block_number(await self._node_info(), "block")
        except parse.ParseError as exc:
            raise ChainUnavailable(str(exc)) from exc

    async def get_transaction(self, txid: str) -> ChainTx | None:
        return await self._transaction(txid, None)

    async def lookup_transaction(self, txid: str) -> TxLookup:
        # The height first: a block the transaction is found in later is judged against a
        # height this node had reached before, never against a newer one it may not have.
        solid = await self.solidified_block_number()
        return TxLookup(await self._transaction(txid, solid), solid)

    async def _transaction(self, txid: str, solid: int | None) -> ChainTx | None:
        params = {"value": txid, "visible": True}
        tx, info = await asyncio.gather(
            self._request("wallet/gettransactionbyid", params),
            self._request("wallet/gettransactioninfobyid", params),
        )
        tx, info = tx or {}, info or {}
        if "Error" in tx or "Error" in info:
            # java-tron answers {"Error": ...} for ids it cannot even look up.
            return None
        if solid is None and info:
            solid = await self.solidified_block_number()
        try:
            return parse.parse_transaction(tx, info, solid)
        except (parse.ParseError, KeyError, TypeError, ValueError) as exc:
            raise ChainUnavailable(f"unreadable transaction answer: {exc}") from exc

    async def block_transfers(self, block_number: int, contract: str) -> BlockTransfers:
        infos = await self._request(
            "walletsolidity/gettransactioninfobyblocknum", {"num": block_number, "visible": True}
        )
        if isinstance(infos, dict) and not infos:
            infos = []  # some nodes answer {} for a block without transactions
        try:
            return parse.parse_block_transfers(block_number, infos, contract)
        except (parse.ParseError, KeyError, TypeError, ValueError) as exc:
            raise ChainUnavailable(f"unreadable block {block_number}: {exc}") from exc

    async def _usdt_contract(self) -> AsyncContract:
        async with self._usdt_lock:
            if self._usdt is None:
                try:
                    self._usdt = await self.tron.get_contract(self.settings.usdt_contract)
                except httpx.HTTPError as exc:
                    raise ChainUnavailable(f"wallet/getcontract: {exc}") from exc
                except TRONPY_ERRORS as exc:
                    raise ChainUnavailable(f"USDT contract not readable: {exc}") from exc
            return self._usdt

    async def usdt_balance(self, address: str) -> int:
        contract = await self._usdt_contract()
        try:
            return int(await contract.functions.balanceOf(address))
        except (httpx.HTTPError, *TRONPY_ERRORS) as exc:
            raise ChainUnavailable(f"balanceOf: {exc}") from exc

    async def trx_balance_sun(self, address: str) -> int:
        account = await self._request("wallet/getaccount", {"address": address, "visible": True})
        if not account:
            return 0  # an address never seen on chain holds nothing
        return int(account.get("balance") or 0)

    async def usdt_transfer_energy(self, owner: str, to_address: str, amount_musdt: int) -> int:
        if not is_valid_address(owner) or not is_valid_address(to_address):
            raise BadTransaction("owner and destination must be TRON addresses")
        answer = await self._request("wallet/triggerconstantcontract", {
            "owner_address": owner, "contract_address": self.settings.usdt_contract,
            "function_selector": "transfer(address,uint256)",
            # ABI words: the address (20 bytes, left-padded) and the amount.
            "parameter": to_raw20(to_address).hex().rjust(64, "0") + f"{amount_musdt:064x}",
            "visible": True,
        })
        try:
            return parse.parse_constant_energy(answer)
        except parse.ParseError as exc:
            raise ChainUnavailable(str(exc)) from exc

    async def energy_price_sun(self) -> int:
        answer = await self._request("wallet/getchainparameters")
        try:
            return parse.parse_chain_parameter(answer, "getEnergyFee")
        except parse.ParseError as exc:
            raise ChainUnavailable(str(exc)) from exc

    async def build_usdt_transfer(
        self, private_key_hex: str, to_address: str, amount_musdt: int, fee_limit_sun: int
    ) -> SignedTransfer:
        if not is_valid_address(to_address):
            raise BadTransaction("destination is not a valid TRON address")
        if amount_musdt <= 0 or fee_limit_sun <= 0:
            raise BadTransaction("amount and fee_limit must be positive")
        try:
            key = PrivateKey(bytes.fromhex(private_key_hex))
        except Exception as exc:  # never echo the key
            raise BadTransaction("the hot wallet key is not a valid private key") from exc
        owner = key.public_key.to_base58check_address()
        contract = await self._usdt_contract()
        try:
            builder = await contract.functions.transfer.with_owner(owner)(to_address, amount_musdt)
            txn = await builder.with_owner(owner).fee_limit(fee_limit_sun).build()
            # sign() refuses more than 60 s after build(); we sign at once.
            txn.sign(key)
        except httpx.HTTPError as exc:
            raise ChainUnavailable(f"building the transfer: {exc}") from exc
        except TRONPY_ERRORS as exc:
            raise BadTransaction(f"building the transfer: {exc}") from exc
        body = txn.to_json()
        return SignedTransfer(
            txid=body["txID"],
            expiration_ms=int(body["raw_data"]["expiration"]),
            signed_json=json.dumps(body, separators=(",", ":"), sort_keys=True),
        )

    async def account_exists(self, address: str) -> bool:
        account = await self._request("wallet/getaccount", {"address": address, "visible": True})
        return bool(account)

    async def build_trx_transfer(self, private_key_hex: str, to_address: str,
                                 amount_sun: int) -> SignedTransfer:
        if not is_valid_address(to_address):
            raise BadTransaction("destination is not a valid TRON address")
        if amount_sun <= 0:
            raise BadTransaction("amount must be positive")
        try:
            key = PrivateKey(bytes.fromhex(private_key_hex))
        except Exception as exc:  # never echo the key
            raise BadTransaction("not a valid private key") from exc
        owner = key.public_key.to_base58check_address()
        try:
            txn = await self.tron.trx.transfer(owner, to_address, amount_sun).build()
            txn.sign(key)
        except httpx.HTTPError as exc:
            raise ChainUnavailable(f"building the TRX transfer: {exc}") from exc
        except TRONPY_ERRORS as exc:
            raise BadTransaction(f"building the TRX transfer: {exc}") from exc
        body = txn.to_json()
        return SignedTransfer(
            txid=body["txID"],
            expiration_ms=int(body["raw_data"]["expiration"]),
            signed_json=json.dumps(body, separators=(",", ":"), sort_keys=True),
        )

    async def account_resource(self, address: str) -> AccountResource:
        if not is_valid_address(address):
            raise BadTransaction("not a TRON address")
        answer = await self._request("wallet/getaccountresource",
                                     {"address": address, "visible": True})
        if not isinstance(answer, dict) or "Error" in answer:
            raise ChainUnavailable(f"getaccountresource answered {str(answer)[:200]}")

        def num(key: str) -> int:
            value = answer.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ChainUnavailable(f"getaccountresource: {key} is not a count")
            return value

        return AccountResource(
            energy_limit=num("EnergyLimit"), energy_used=num("EnergyUsed"),
            net_limit=num("NetLimit"), net_used=num("NetUsed"),
            free_net_limit=num("freeNetLimit"), free_net_used=num("freeNetUsed"),
            total_energy_limit=num("TotalEnergyLimit"),
            total_energy_weight=num("TotalEnergyWeight"))

    async def delegatable_sun(self, owner: str, resource: str) -> int:
        if not is_valid_address(owner) or resource not in RESOURCE_TYPES:
            raise BadTransaction("owner must be a TRON address, resource ENERGY or BANDWIDTH")
        answer = await self._request("wallet/getcandelegatedmaxsize", {
            "owner_address": owner, "type": RESOURCE_TYPES[resource], "visible": True})
        size = answer.get("max_size", 0) if isinstance(answer, dict) else None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ChainUnavailable(f"getcandelegatedmaxsize answered {str(answer)[:200]}")
        return size

    async def build_delegation(self, private_key_hex: str, receiver: str, balance_sun: int,
                               resource: str, undelegate: bool = False) -> SignedTransfer:
        if not is_valid_address(receiver):
            raise BadTransaction("receiver is not a valid TRON address")
        if balance_sun <= 0 or resource not in RESOURCE_TYPES:
            raise BadTransaction("balance must be positive, resource ENERGY or BANDWIDTH")
        try:
            key = PrivateKey(bytes.fromhex(private_key_hex))
        except Exception as exc:  # never echo the key
            raise BadTransaction("not a valid private key") from exc
        owner = key.public_key.to_base58check_address()
        what = "undelegation" if undelegate else "delegation"
        try:
            if undelegate:
                builder = self.tron.trx.undelegate_resource(owner, receiver, balance_sun,
                                                            resource)
            else:
                builder = self.tron.trx.delegate_resource(owner, receiver, balance_sun,
                                                          resource)
            txn = await builder.build()
            txn.sign(key)
        except httpx.HTTPError as exc:
            raise ChainUnavailable(f"building the {what}: {exc}") from exc
        except TRONPY_ERRORS as exc:
            raise BadTransaction(f"building the {what}: {exc}") from exc
        body = txn.to_json()
        return SignedTransfer(
            txid=body["txID"],
            expiration_ms=int(body["raw_data"]["expiration"]),
            signed_json=json.dumps(body, separators=(",", ":"), sort_keys=True),
        )

    async def broadcast(self, signed_json: str) -> BroadcastResult:
        try:
            body = json.loads(signed_json)
        except ValueError as exc:
            raise BadTransaction("stored transaction is not JSON") from exc
        payload = await self._request("wallet/broadcasttransaction", body)
        if not isinstance(payload, dict):
            raise ChainUnavailable("broadcasttransaction answered no object")
        return parse.parse_broadcast(payload)

    async def close(self) -> None:
        await self.tron.close()
