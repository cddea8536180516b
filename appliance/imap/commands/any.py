"""Commands legal in any state (RFC 3501 §6.1) plus ID (RFC 2971)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.imap.commands.base import Command


@dataclass(frozen=True)
class Capability(Command):
    VERB = "CAPABILITY"


@dataclass(frozen=True)
class Noop(Command):
    VERB = "NOOP"


@dataclass(frozen=True)
class Logout(Command):
    VERB = "LOGOUT"


@dataclass(frozen=True)
class Id(Command):
    """RFC 2971: ID ("name" "value" ...) / ID NIL. We only log what the client says."""

    VERB = "ID"
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, tag, cursor):
        # id = "ID" SP id-params-list; id-params-list = "(" *(string SP nstring) ")" / nil
        cursor.sp()
        if cursor.maybe(b"NIL"):
            return cls(tag, ())
        items = cursor.paren_list(cursor.nstring)
        if len(items) % 2 or len(items) > 60:
            raise cursor.error("ID needs field/value pairs (at most 30)")
        pairs = []
        for key, value in zip(items[::2], items[1::2]):
            if key is None:
                raise cursor.error("ID field name cannot be NIL")
            pairs.append((key.decode("utf-8", "replace"),
                          None if value is None else value.decode("utf-8", "replace")))
        return cls(tag, tuple(pairs))


COMMANDS = (Capability, Noop, Logout, Id)
