"""Every kind of ledger line the server can write has words on the wallet page: the kinds are
read from the server's own calls to money/ledger.py (the kind argument of post, transfer,
reserve, release, settle, and the first item of each transaction handed to post_many), and
each must be a key of KIND_LABELS in static/js/pages/wallet.js."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server"
WALLET_JS = ROOT / "static" / "js" / "pages" / "wallet.js"

# Where each ledger function takes its kind (positional index after conn).
KIND_ARG = {"post": 1, "transfer": 4, "reserve": 3, "release": 3, "settle": 3}

# What the ledger writes today; the scan below must find exactly these (a new kind then
# needs its words on the page and its name here).
LEDGER_KINDS = {
    "deposit", "bonus", "call_hold", "call_minute", "call_settle", "call_release",
    "call_refund", "tip", "dispute_refund", "earnings_release", "withdrawal",
    "withdrawal_return", "withdrawal_sent",
}


def module_strings() -> dict[str, str]:
    """Module-level NAME = "text" constants of the server (KIND_REFUND = "dispute_refund")."""
    out: dict[str, str] = {}
    for path in SERVER.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                out[node.targets[0].id] = node.value.value
    return out


def written_kinds() -> set[str]:
    names = module_strings()

    def text(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return names.get(node.id)
        return None

    kinds: set[str] = set()
    for path in SERVER.rglob("*.py"):
        if path.name == "ledger.py" and path.parent.name == "money":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                    and f.value.id == "ledger" and f.attr in KIND_ARG):
                i = KIND_ARG[f.attr]
                arg = node.args[i] if len(node.args) > i else next(
                    (k.value for k in node.keywords if k.arg == "kind"), None)
                assert arg is not None and text(arg) is not None, (
                    f"{path.name}:{node.lineno}: a ledger kind the test cannot read")
                kinds.add(text(arg))  # type: ignore[arg-type]
            # Transactions for post_many: txs.append(("call_minute", key, ref, moves)).
            if (isinstance(f, ast.Attribute) and f.attr == "append" and node.args
                    and isinstance(node.args[0], ast.Tuple) and len(node.args[0].elts) == 4
                    and path.name == "billing.py"):
                kind = text(node.args[0].elts[0])
                if kind is not None:
                    kinds.add(kind)
    return kinds


def page_labels() -> set[str]:
    js = WALLET_JS.read_text()
    block = re.search(r"const KIND_LABELS = \{(.*?)\n\};", js, re.S)
    assert block, "KIND_LABELS not found in wallet.js"
    return set(re.findall(r"^\s*([a-z_]+):", block.group(1), re.M))


def test_the_scan_finds_every_kind_the_ledger_writes():
    assert written_kinds() == LEDGER_KINDS


def test_every_ledger_kind_has_words_on_the_wallet_page():
    missing = sorted(LEDGER_KINDS - page_labels())
    assert missing == [], f"wallet.js KIND_LABELS has no label for {missing}"
