"""The ChainGateway over a full node's HTTP API (the embedded devnet or a real network): the
configured endpoint, the API key header from the environment variable named in config,
explicit timeouts.

Reads are the node's own HTTP calls (the ones tronpy makes), POSTed with an aiohttp session
and read by chain/parse.py; a USDT balance is the contract's `balanceOf` run as a constant
call. Only building and signing a transfer uses tronpy (`AsyncTron`, its contract objects,
over an httpx client): importing tronpy loads all of it (eth_utils, pydantic, httpx, a third
of a second), so it is imported in a worker thread when the first transfer is built, never by
serving. Every transport failure becomes `ChainUnavailable`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import aiohttp

from meterchat.chain import parse
from meterchat.chain.address import address_of_key, is_valid_address, to_raw20
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

if TYPE_CHECKING:
    from tronpy import AsyncTron
    from tronpy.async_contract import AsyncContract

API_KEY_HEADER = "TRON-PRO-API-KEY"
# The owner of a constant call that reads (tronpy's default: the zero address).
ZERO_ADDRESS = "T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb"
# The HTTP failures of a read: aiohttp's, a timeout, an answer that is not JSON.
READ_ERRORS = (aiohttp.ClientError, TimeoutError, ValueError)


def _load_tronpy() -> tuple[ModuleType, ModuleType, ModuleType, tuple[type[BaseException], ...]]:
    """tronpy, httpx, tronpy.keys, and what tronpy raises for answers it does not like (many
    are ValueError subclasses)."""
    import httpx
    import tronpy
    from tronpy import exceptions as e
    from tronpy import keys

    errors = (ValueError, e.UnknownError, e.TransactionError, e.TvmError, e.ValidationError,
              e.ApiError, e.BugInJavaTron, KeyError, TypeError)
    return tronpy, httpx, keys, errors
# getcandelegatedmaxsize's `type` per Stake 2.0 resource.
RESOURCE_TYPES = {"BANDWIDTH": 0, "ENERGY": 1}


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
        self._headers: dict[str, str] = {}
        api_key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        if api_key:
            self._headers[API_KEY_HEADER] = api_key
        self._endpoint = (settings.endpoint if settings.endpoint.endswith("/")
                          else settings.endpoint + "/")
        self._http: aiohttp.ClientSession | None = None
        # Made by the first transfer built (_signer): tronpy, its client and its USDT contract.
        self._tronpy: tuple[ModuleType, ModuleType, ModuleType,
                            tuple[type[BaseException], ...]] | None = None
        self._tron: AsyncTron | None = None
        self._usdt: AsyncContract | None = None
        self._signer_lock = asyncio.Lock()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # Made on the first read, inside the running loop; no proxy from the environment.
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
                headers=self._headers, trust_env=False)
        return self._http

    async def _request(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            async with self._session().post(urljoin(self._endpoint, path),
                                            json=params or {}) as resp:
                resp.raise_for_status()
                return await resp.json(content_type=None)
        except READ_ERRORS as exc:
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

    async def _signer(self) -> tuple[AsyncTron, ModuleType, ModuleType,
                                     tuple[type[BaseException], ...]]:
        """tronpy's client, made once: (tron, httpx, tronpy.keys, what tronpy raises)."""
        async with self._signer_lock:
            if self._tronpy is None:
                # In a thread: the import takes a third of a second the loop must not wait.
                self._tronpy = await asyncio.to_thread(_load_tronpy)
            tronpy, httpx, keys, errors = self._tronpy
            if self._tron is None:
                s = self.settings
                http = httpx.AsyncClient(timeout=httpx.Timeout(s.timeout_s),
                                         headers=self._headers, trust_env=False)
                provider = tronpy.providers.AsyncHTTPProvider(
                    self._endpoint, timeout=s.timeout_s, client=http)
                # tronpy would otherwise add one of its built-in shared TronGrid keys on
                # trongrid hosts; we send only the operator's own key (set on the client).
                provider.use_api_key = False
                self._tron = tronpy.AsyncTron(
                    provider, conf={"timeout": s.timeout_s, "fee_limit": 40_000_000})
            return self._tron, httpx, keys, errors

    async def tronpy_client(self) -> AsyncTron:
        """tronpy's AsyncTron over this node (made, and tronpy imported, on first use)."""
        return (await self._signer())[0]

    async def _usdt_contract(self) -> AsyncContract:
        tron, httpx, _, errors = await self._signer()
        async with self._signer_lock:
            if self._usdt is None:
                try:
                    self._usdt = await tron.get_contract(self.settings.usdt_contract)
                except httpx.HTTPError as exc:
                    raise ChainUnavailable(f"wallet/getcontract: {exc}") from exc
                except errors as exc:
                    raise ChainUnavailable(f"USDT contract not readable: {exc}") from exc
            return self._usdt

    async def usdt_balance(self, address: str) -> int:
        if not is_valid_address(address):
            raise ChainUnavailable("balanceOf: not a TRON address")
        answer = await self._request("wallet/triggerconstantcontract", {
            "owner_address": ZERO_ADDRESS, "contract_address": self.settings.usdt_contract,
            "function_selector": "balanceOf(address)",
            "parameter": to_raw20(address).hex().rjust(64, "0"), "visible": True,
        })
        try:
            return parse.parse_constant_uint(answer)
        except parse.ParseError as exc:
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
        return await self._chain_parameter("getEnergyFee")

    async def bandwidth_price_sun(self) -> int:
        return await self._chain_parameter("getTransactionFee")

    async def _chain_parameter(self, key: str) -> int:
        answer = await self._request("wallet/getchainparameters")
        try:
            return parse.parse_chain_parameter(answer, key)
        except parse.ParseError as exc:
            raise ChainUnavailable(str(exc)) from exc

    async def build_usdt_transfer(
        self, private_key_hex: str, to_address: str, amount_musdt: int, fee_limit_sun: int
    ) -> SignedTransfer:
        if not is_valid_address(to_address):
            raise BadTransaction("destination is not a valid TRON address")
        if amount_musdt <= 0 or fee_limit_sun <= 0:
            raise BadTransaction("amount and fee_limit must be positive")
        owner = self._owner(private_key_hex)
        contract = await self._usdt_contract()

        async def build(tron: Any) -> Any:
            builder = await contract.functions.transfer.with_owner(owner)(to_address, amount_musdt)
            return await builder.with_owner(owner).fee_limit(fee_limit_sun).build()

        return await self._signed(private_key_hex, "transfer", build)

    async def account_exists(self, address: str) -> bool:
        account = await self._request("wallet/getaccount", {"address": address, "visible": True})
        return bool(account)

    async def build_trx_transfer(self, private_key_hex: str, to_address: str,
                                 amount_sun: int) -> SignedTransfer:
        if not is_valid_address(to_address):
            raise BadTransaction("destination is not a valid TRON address")
        if amount_sun <= 0:
            raise BadTransaction("amount must be positive")
        owner = self._owner(private_key_hex)

        async def build(tron: Any) -> Any:
            return await tron.trx.transfer(owner, to_address, amount_sun).build()

        return await self._signed(private_key_hex, "TRX transfer", build)

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
        owner = self._owner(private_key_hex)

        async def build(tron: Any) -> Any:
            if undelegate:
                return await tron.trx.undelegate_resource(owner, receiver, balance_sun,
                                                          resource).build()
            return await tron.trx.delegate_resource(owner, receiver, balance_sun,
                                                    resource).build()

        return await self._signed(private_key_hex, "undelegation" if undelegate else "delegation",
                                  build)

    @staticmethod
    def _owner(private_key_hex: str) -> str:
        """The address a key signs for; a key that is none is a BadTransaction that never
        echoes it (a hot wallet's, a deposit address's)."""
        try:
            return address_of_key(private_key_hex)
        except Exception as exc:
            raise BadTransaction("not a valid private key") from exc

    async def _signed(self, private_key_hex: str, what: str,
                      build: Callable[[Any], Awaitable[Any]]) -> SignedTransfer:
        """Build a transaction with tronpy (`build(tron)`), sign it at once (tronpy's sign()
        refuses more than 60 s after build()) and keep its bytes: the one place tronpy's
        failures become ours (a node that does not answer, or an answer refused)."""
        tron, httpx, keys, errors = await self._signer()
        key = keys.PrivateKey(bytes.fromhex(private_key_hex))
        try:
            txn = await build(tron)
            txn.sign(key)
        except httpx.HTTPError as exc:
            raise ChainUnavailable(f"building the {what}: {exc}") from exc
        except errors as exc:
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
        if self._http is not None:
            await self._http.close()
        if self._tron is not None:
            await self._tron.close()
