"""The TRON networks meterchat knows: each one's default full-node endpoint and USDT
contract. Config may override both (`[chain] endpoint`, `usdt_contract`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Network:
    name: str
    endpoint: str  # full-node HTTP API; empty for devnet (the embedded node's own address)
    usdt_contract: str  # empty for devnet (the embedded node creates its token at genesis)
    # Blocks a network needs before a block is irreversible; informational (solidified
    # blocks come from the node itself).
    solidify_blocks: int = 19


NETWORKS: dict[str, Network] = {
    "devnet": Network("devnet", "", ""),
    "nile": Network("nile", "https://nile.trongrid.io", "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"),
    # Shasta has no official Tether deployment; operators set `usdt_contract` to the test
    # token they use there.
    "shasta": Network("shasta", "https://api.shasta.trongrid.io", ""),
    "mainnet": Network(
        "mainnet", "https://api.trongrid.io", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    ),
}


def network(name: str) -> Network:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown TRON network {name!r}") from None
