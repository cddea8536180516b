"""Commands legal only in the not-authenticated state (RFC 3501 §6.2)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.imap.commands.base import Command


@dataclass(frozen=True)
class StartTls(Command):
    VERB = "STARTTLS"


@dataclass(frozen=True)
class Login(Command):
    # login = "LOGIN" SP userid SP password; both astrings
    VERB = "LOGIN"
    user: bytes = b""
    password: bytes = b""

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        user = cursor.astring()
        cursor.sp()
        return cls(tag, user, cursor.astring())


@dataclass(frozen=True)
class Authenticate(Command):
    # authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")] (RFC 4959 SASL-IR)
    VERB = "AUTHENTICATE"
    mechanism: str = ""
    initial: bytes | None = None  # the initial response as sent; b"=" means empty

    @classmethod
    def parse(cls, tag, cursor):
        cursor.sp()
        mechanism = cursor.keyword()
        initial = None
        if not cursor.at_end():
            cursor.sp()
            initial = cursor.atom()  # base64 and "=" are atom characters
        return cls(tag, mechanism, initial)


COMMANDS = (StartTls, Login, Authenticate)
