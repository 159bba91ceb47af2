"""The house's rules (ARCHITECTURE.md), checked on the source: imports run one way, from the
handlers down to the ledger and the database; `chain` knows nothing of the rest; every module
is placed on a layer; nothing generic is importable from the checkout's folders."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The checkout's folders and the import names they have in the package.
FOLDERS = {"server": "meterchat", "chain": "meterchat.chain", "tools": "meterchat.tools"}

# Layers, lowest first. A module may import modules of lower layers, and of its own layer
# only as the rules below allow.
CHAIN, CORE, MONEY, DOMAIN, HTTP, ENTRY = range(6)
LAYER_NAMES = ["chain", "core", "money", "domain", "http", "entry"]
# Domain rooms in the order they may import each other: a room imports only rooms before it.
DOMAIN_ORDER = ["accounts", "mail", "events", "sellers", "economy", "deposits", "withdrawals", "calls",
                "operator"]
# Modules of a domain room that face HTTP or wire jobs into the app (they read app keys).
HTTP_MODULES = {"routes", "admin_routes", "ws", "auth", "watcher", "sender", "sweeper",
                "delegator", "earnings"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    name = [FOLDERS[parts[0]], *parts[1:]]
    if name[-1] == "__init__":
        name.pop()
    return ".".join(name)


def layer_of(module: str) -> tuple[int, str]:
    """(layer, room) of a meterchat module; fails for a module nobody placed."""
    parts = module.split(".")
    if parts[:2] == ["meterchat", "chain"]:
        return CHAIN, "chain"
    if parts == ["meterchat"] or parts[1] in ("app", "cli", "commands", "tools", "migrations", "static"):
        return ENTRY, parts[-1]
    room = parts[1]
    if room == "core":
        return CORE, room
    if room == "money":
        return MONEY, room
    if room in ("web", "appkeys", "chain_ctx"):
        return HTTP, room
    if room in DOMAIN_ORDER:
        if len(parts) > 2 and parts[2] in HTTP_MODULES:
            return HTTP, room
        return DOMAIN, room
    raise AssertionError(f"{module} is on no layer: place it in ARCHITECTURE.md and here")


def sources() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every meterchat module a file imports (at any depth), with its line."""
    found = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in ("server", "chain", "tools"):
                found.append((node.lineno, node.module))  # the old top-level names
            elif node.module.startswith("meterchat"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    is_module = any(module_name(p) == sub for p in sources())
                    found.append((node.lineno, sub if is_module else node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.split(".")[0] in ("meterchat", "server", "chain", "tools")]
    return found


def allowed(src: str, dst: str) -> bool:
    (ls, rs), (ld, rd) = layer_of(src), layer_of(dst)
    if ls == CHAIN:
        return ld == CHAIN
    if ld < ls:
        return True
    if ld > ls:
        return False
    if ls in (CORE, MONEY, CHAIN) or rs == rd:
        return True
    if ls == DOMAIN:
        return DOMAIN_ORDER.index(rd) < DOMAIN_ORDER.index(rs)
    return ls in (HTTP, ENTRY)


def test_every_module_is_on_a_layer():
    for path in sources():
        layer_of(module_name(path))


def test_imports_run_one_way():
    wrong = []
    for path in sources():
        src = module_name(path)
        for line, dst in imports_of(path):
            if not dst.startswith("meterchat"):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {dst}: use meterchat.*")
            elif not allowed(src, dst):
                (ls, _), (ld, _) = layer_of(src), layer_of(dst)
                wrong.append(f"{path.relative_to(ROOT)}:{line} {src} ({LAYER_NAMES[ls]}) "
                             f"imports {dst} ({LAYER_NAMES[ld]})")
    assert not wrong, "imports running the wrong way:\n" + "\n".join(wrong)


@pytest.mark.parametrize(("src", "dst", "ok"), [
    ("meterchat.calls.manager", "meterchat.money.ledger", True),
    ("meterchat.money.ledger", "meterchat.calls.manager", False),
    ("meterchat.chain.client", "meterchat.core.config", False),
    ("meterchat.economy.limits", "meterchat.calls.manager", False),
    ("meterchat.calls.manager", "meterchat.economy.limits", True),
    ("meterchat.economy.promotions", "meterchat.operator.audit_log", False),
    ("meterchat.economy.promotions", "meterchat.core.audit", True),
    ("meterchat.core.db", "meterchat.web.static", False),
    ("meterchat.calls.routes", "meterchat.calls.manager", True),
])
def test_the_rule_itself(src, dst, ok):
    assert allowed(src, dst) is ok


def test_the_map_names_every_room():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    rooms = {p.name for p in (ROOT / "server").iterdir() if (p / "__init__.py").exists()}
    missing = [room for room in sorted(rooms) if f"`{room}/`" not in text]
    assert not missing, f"ARCHITECTURE.md does not describe {missing}"


def test_the_wheel_lists_every_package_of_the_checkout():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {module_name(p) for p in sources() if p.name == "__init__.py"}
    found |= {"meterchat.migrations", "meterchat.static"}
    assert found <= listed, f"not in pyproject's packages: {sorted(found - listed)}"
