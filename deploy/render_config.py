"""The installed config, for deploy/install.sh (run with the installed program's Python).

    render_config.py render EXAMPLE STATE_DIR [DOMAIN]  print the config to install: the
        example with every relative path resolved in STATE_DIR (the service's only writable
        place) and, with DOMAIN, the public URL and the STUN/TURN URLs of that host
    render_config.py check CONFIG STATE_DIR             exit 1, naming the key, when the
        config does not load or a path of it lies outside STATE_DIR (the service could not
        write it)
    render_config.py value CONFIG SECTION.KEY           print one value of the loaded config

Paths are found from the config's own declarations (every key of type Path), so a path key
added later is resolved too."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import typing
from pathlib import Path

from meterchat.core.config import ConfigError, load_config, section_names, section_type

LINE = re.compile(r'^(?P<key>[a-z_]+)(?P<eq>\s*=\s*)(?P<value>"[^"]*"|\[[^\]]*\]|[^#\s]+)'
                  r"(?P<rest>.*)$")


def path_keys() -> set[tuple[str, str]]:
    out = set()
    for section in section_names():
        cls = section_type(section)
        hints = typing.get_type_hints(cls)
        out.update((section, f.name) for f in dataclasses.fields(cls) if hints[f.name] is Path)
    return out


def render(example: Path, state_dir: Path, domain: str | None) -> str:
    paths = path_keys()
    set_values: dict[tuple[str, str], str] = {}
    if domain:
        set_values = {
            ("server", "public_url"): json.dumps(f"https://{domain}"),
            ("ice", "stun_urls"): json.dumps([f"stun:{domain}:3478"]),
            ("ice", "turn_urls"): json.dumps([f"turn:{domain}:3478?transport=udp",
                                              f"turn:{domain}:3478?transport=tcp",
                                              f"turns:{domain}:5349?transport=tcp"]),
        }
    # The hot wallet key comes from the root-only secrets file, through the environment.
    set_values[("chain", "hot_wallet_key_env")] = '"HOT_WALLET_KEY"'
    # Every request arrives from the local Caddy: its X-Forwarded-For names the client (login
    # and sign-up limits, logs) and its X-Forwarded-Proto makes the cookies Secure.
    set_values[("server", "trusted_proxies")] = '["127.0.0.1", "::1"]'
    out, section, done = [], None, set()
    for line in example.read_text().splitlines():
        header = re.match(r"^\[(\w+)\]", line)
        if header:
            section = header.group(1)
        m = LINE.match(line)
        if m and section:
            where = (section, m.group("key"))
            value = m.group("value")
            if where in set_values:
                value = set_values[where]
            elif where in paths:
                text = json.loads(value)
                if not Path(text).is_absolute():
                    value = json.dumps(str(state_dir / text))
            if value != m.group("value"):
                line = f"{m.group('key')}{m.group('eq')}{value}{m.group('rest')}"
                done.add(where)
        out.append(line)
    missing = [f"{s}.{k}" for s, k in set_values if (s, k) not in done]
    if missing:
        raise SystemExit(f"render_config: {example} has no line for {', '.join(missing)}")
    return ("# Installed by deploy/install.sh from config.example.toml: every relative path\n"
            f"# resolved in {state_dir}, the service's only writable place. Edit freely; the\n"
            "# installer never overwrites this file.\n" + "\n".join(out) + "\n")


def check(config_path: Path, state_dir: Path) -> list[str]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [str(exc)]
    problems = []
    state = state_dir.resolve()
    for section, key in sorted(path_keys()):
        value = Path(getattr(getattr(config, section), key)).resolve()
        if not value.is_relative_to(state):
            problems.append(f"config key {section}.{key} = {value} is outside {state}, the "
                            "service's only writable place: set it to a path under it")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "render":
        sys.stdout.write(render(Path(argv[1]), Path(argv[2]), argv[3] if len(argv) > 3 else None))
        return 0
    if len(argv) == 3 and argv[0] == "check":
        problems = check(Path(argv[1]), Path(argv[2]))
        for p in problems:
            print(f"{argv[1]}: {p}", file=sys.stderr)
        return 1 if problems else 0
    if len(argv) == 3 and argv[0] == "value":
        section, key = argv[2].split(".", 1)
        print(getattr(getattr(load_config(argv[1]), section), key))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
