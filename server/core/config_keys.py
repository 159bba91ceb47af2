"""Config declaration machinery: `key()` declares a setting (default, help, limits) as a
dataclass field, and this module turns a TOML table into such a section, checking each value
against its declared type and limits; `ConfigError` names the bad key; `Secret` keeps a
secret value from printing. The sections themselves are declared in `config_*.py`, the whole
file put together and loaded in `config.py`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from decimal import Decimal
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key."""


class Secret:
    """A secret value that never prints: repr and str show only that it is set."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def key(default: Any, help: str, **limits: Any) -> Any:
    """Declare a config key: its default, its help text and optional limits
    (`choices`, `min`, `max`; `words`: strings a number key takes too); `toml="name"` when
    the file's name is no Python name (`[mail] from`)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **limits})
    return field(default=default, metadata={"help": help, **limits})


def toml_name(f: dataclasses.Field[Any]) -> str:
    """The key's name in the TOML file (a field's own name unless declared otherwise)."""
    return str(f.metadata.get("toml", f.name))


def section_to_dict(section: Any) -> dict[str, Any]:
    """A section back as its TOML table."""
    return {toml_name(f): getattr(section, f.name) for f in dataclasses.fields(section)}


def convert(where: str, hint: Any, value: Any, meta: dict[str, Any],
            base_dir: Path) -> Any:
    """One value checked against its declared type and limits (`where` names the key)."""
    def bad(expected: str) -> ConfigError:
        words = " or ".join(f'"{w}"' for w in meta.get("words", ()))
        return ConfigError(f"config key {where}: expected {expected}"
                           f"{' or ' + words if words else ''}, got {value!r}")

    if isinstance(value, str) and value in meta.get("words", ()):
        return value  # a word a number key also takes ("auto")
    if meta.get("words") and typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not str)

    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        out: Any = value
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        out = value
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise bad("a number")
        out = float(value)
    elif hint is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise bad("a number")
        out = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if not out.is_finite():
            raise bad("a finite number")
    elif hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        out = value
    elif hint is Path:
        if not isinstance(value, str | Path) or str(value) == "":
            raise bad("a file path")
        out = Path(value)
        if not out.is_absolute():
            out = base_dir / out
    elif typing.get_origin(hint) is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        out = list(value)
    else:  # pragma: no cover - a declaration error, caught by the tests
        raise ConfigError(f"config key {where}: unsupported type {hint}")
    choices = meta.get("choices")
    if choices is not None and out not in choices:
        raise ConfigError(
            f"config key {where}: {value!r} is not one of {', '.join(map(str, choices))}"
        )
    if "min" in meta and out < meta["min"]:
        raise ConfigError(f"config key {where}: {value!r} is below the minimum {meta['min']}")
    if "max" in meta and out > meta["max"]:
        raise ConfigError(f"config key {where}: {value!r} is above the maximum {meta['max']}")
    return out


def build_section(name: str, values: Any, base_dir: Path, cls: type) -> Any:
    """A section of class `cls` from its TOML table `name`; unknown keys and bad values raise."""
    if not isinstance(values, dict):
        raise ConfigError(f"config key {name}: expected a [{name}] table")
    hints = typing.get_type_hints(cls)
    fields = {toml_name(f): f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in values.items():
        if k not in fields:
            raise ConfigError(
                f"unknown config key {name}.{k}; keys of [{name}]: {', '.join(fields)}"
            )
        f = fields[k]
        kwargs[f.name] = convert(f"{name}.{k}", hints[f.name], v, dict(f.metadata), base_dir)
    # Defaulted paths are relative to the config file too.
    for f in fields.values():
        if f.name not in kwargs and hints[f.name] is Path:
            kwargs[f.name] = convert(f"{name}.{f.name}", Path, f.default, {}, base_dir)
    return cls(**kwargs)


def describe_fields(where: str, cls: type) -> list[tuple[str, str, Any, str]]:
    """(where, key, default, help) for every key of a section class."""
    # Every key has a default or (lists) a default factory.
    return [(where, toml_name(f), f.default_factory() if callable(f.default_factory) else f.default,
             f.metadata.get("help", "")) for f in dataclasses.fields(cls)]
