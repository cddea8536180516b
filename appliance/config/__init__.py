"""Configuration: one TOML file plus built-in defaults, validated into a frozen ``Config``.

A file holds only the settings it changes; everything else keeps its default. An
unknown or ill-typed setting is an error that names the key and the file's line, so a
typo never silently falls back to a default. This is the only package that reads the
config file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from pathlib import Path

from appliance.config.schema import Config

__all__ = ["Config", "ConfigError", "hostname_warning", "load", "sample_text", "with_overrides"]


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, line and key."""


def load(path: Path | None) -> Config:
    """Read ``path`` (if it exists) over the defaults."""
    if path is None or not path.exists():
        return Config()
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    return _build(Config, data, (), text, path)


def with_overrides(config: Config, **sections: dict) -> Config:
    """A copy of ``config`` with some fields replaced: ``with_overrides(c, server={"listen": [...]})``."""
    changes = {name: dataclasses.replace(getattr(config, name), **values) for name, values in sections.items()}
    return dataclasses.replace(config, **changes)


def hostname_warning(hostname: str) -> str | None:
    """What is wrong with ``server.hostname`` for mail on the internet, or None.

    Receivers check the name in HELO (RFC 5321 §4.1.1.1 asks for a fully qualified
    domain name), clients check it against the certificate, and `kotakpos dns` publishes
    it as the MX: a bare machine name ("vm") fails all three.
    """
    name = hostname.rstrip(".")
    labels = name.split(".")
    try:
        ipaddress.ip_address(name)
        reason = "is an IP address"
    except ValueError:
        reason = "" if len(labels) >= 2 and all(labels) and labels[-1] != "localdomain" else \
            "is not a fully qualified domain name"
    if not reason:
        return None
    return (f"server.hostname {hostname!r} {reason}: it is the name this server gives in HELO, its TLS "
            f"certificate and the MX record; set the name the internet knows it by in kotakpos.toml, "
            f"under [server]: hostname = \"mail.example.org\"")


def _build(cls, data: dict, where: tuple[str, ...], text: str, path: Path):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{path}:{_line_of(text, where, key)}: unknown setting '{'.'.join(where + (key,))}'")
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}:{_line_of(text, where, key)}: '{key}' must be a table [{key}]")
            values[key] = _build(type(default), value, where + (key,), text, path)
        else:
            values[key] = _checked(value, default, fields[key].metadata, where + (key,), text, path)
    return cls(**values)


def _checked(value, default, metadata, key_path, text, path):
    expected = type(default)
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if ok and expected is list:
        ok = all(isinstance(v, str) for v in value)
    if ok and expected is dict:
        ok = all(isinstance(v, str) for v in value.values())
    if not ok:
        line = _line_of(text, key_path[:-1], key_path[-1])
        raise ConfigError(
            f"{path}:{line}: '{'.'.join(key_path)}' must be {_type_name(expected)}, not {value!r}"
        )
    choices = metadata.get("choices")
    if choices:
        for item in value if expected is list else [value]:  # a list setting: each of its items
            if item not in choices:
                line = _line_of(text, key_path[:-1], key_path[-1])
                raise ConfigError(f"{path}:{line}: '{'.'.join(key_path)}' cannot be {item!r}; "
                                  f"allowed: {', '.join(map(repr, choices))}")
    low, high = metadata.get("minimum"), metadata.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        line = _line_of(text, key_path[:-1], key_path[-1])
        raise ConfigError(f"{path}:{line}: '{'.'.join(key_path)}' must be {_range(metadata)}, not {value!r}")
    if metadata.get("values") == "host:port":
        for name, item in value.items():
            if not _is_host_port(item):
                line = _line_of(text, key_path, name)
                raise ConfigError(f"{path}:{line}: '{'.'.join(key_path)}' entry {name!r} must be \"host:port\" "
                                  f"(e.g. \"mx.example.org:25\"), not {item!r}")
    return value


def _is_host_port(text: str) -> bool:
    """``host:port`` or ``[v6]:port``, the port a number from 1 to 65535."""
    if text.startswith("["):
        host, separator, port = text[1:].partition("]:")
    else:
        host, separator, port = text.rpartition(":")
        separator = separator if ":" not in host else ""  # a bare IPv6 address has no port
    return bool(host and separator and port.isdigit() and 0 < int(port) < 65536)


def _range(metadata) -> str:
    """A number setting's range in words: "from 1 to 10", "at least 1" (None: no range)."""
    low, high = metadata.get("minimum"), metadata.get("maximum")
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}" if high is not None else None


def _type_name(t) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list of strings", dict: "a table of strings"}[t]


def _line_of(text: str, section: tuple[str, ...], key: str) -> int:
    """The 1-based line where ``key`` is set inside ``[section]`` (0 when not found)."""
    current: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = tuple(part.strip().strip('"') for part in header.group(1).split("."))
            if current == section + (key,):
                return number
            continue
        assignment = re.match(r'\s*(?:"([^"]*)"|([A-Za-z0-9_.\-]+))\s*=', line)
        if assignment:
            quoted, bare = assignment.groups()
            dotted = tuple(current) + ((quoted,) if quoted is not None else tuple(bare.split(".")))
            if dotted == section + (key,):
                return number
    return 0


def sample_text() -> str:
    """The commented kotakpos.toml written on first start: every setting with its default.

    In TOML a key belongs to the table whose header came last, so each section lists its
    plain settings first and its sub-tables ([mta.routes]) after them: uncommenting any
    line then keeps it in the table it is listed under.
    """
    lines = [
        "# Kotakpos configuration. Every setting is listed with its default, commented out.",
        "# Uncomment and change only what you need; the rest keeps its default.",
        "",
    ]
    for section in dataclasses.fields(Config):
        lines.append(f"[{section.name}]")
        defaults = section.default_factory()
        fields = dataclasses.fields(defaults)
        tables = [f for f in fields if isinstance(getattr(defaults, f.name), dict)]
        for f in fields:
            if f not in tables:
                allowed = _range(f.metadata)
                lines.append(f"# {f.metadata['doc']}" + (f" Allowed: {allowed}." if allowed else ""))
                lines.append(f"# {f.name} = {_toml_value(getattr(defaults, f.name))}")
        for f in tables:
            lines.append(f"# {f.metadata['doc']} Uncomment the [{section.name}.{f.name}] line too: "
                         f"every line below it belongs to it.")
            lines.append(f"# [{section.name}.{f.name}]")
            lines.append('# "example.org" = "mx.example.org:25"')
        lines.append("")
    return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
