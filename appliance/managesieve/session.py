"""The ManageSieve state machine: one `ManageSieveSession` per connection, owned by one thread.

RFC 5804 §1.5: the server greets with its capabilities; the client is NONAUTH until
AUTHENTICATE succeeds, AUTHENTICATED until UNAUTHENTICATE or LOGOUT. The legal verbs of each
state are written once below; `_dispatch` is the one gate before any handler runs.
"""

from __future__ import annotations

import enum
import logging

from appliance.auth.sasl import SaslError, decode_plain
from appliance.managesieve import replies
from appliance.managesieve.errors import (AuthFailed, CommandSyntaxError, CommandTooLong, LiteralTooBig,
                                          ManageSieveError, ServerError, UserError)
from appliance.managesieve.parse import Command, InvalidCommand, parse_command, parse_string_line
from appliance.managesieve.reader import CommandReader
from appliance.mda import rules, scripts, sieve
from appliance.net.conn import ConnectionClosed, IdleTimeout, LineTooLong
from appliance.store import AlreadyExists, NotFound, QuotaExceeded, ScriptActive

log = logging.getLogger("kotakpos.managesieve")

IMPLEMENTATION = "Kotakpos"
# A command line without its literals: names and SASL responses fit with room to spare.
LINE_LIMIT = 8192
# The largest script and the number of scripts a user may keep are [managesieve]
# max_script_size and max_scripts, read for each command (a reload applies at once). A
# literal up to DROP_FACTOR times the size limit is read and dropped so the client gets
# NO (QUOTA/MAXSIZE) and may go on; beyond it the session ends.
DROP_FACTOR = 16
# Before login, literals only carry SASL responses and the like.
UNAUTHENTICATED_LITERAL_LIMIT = 4096
MAX_ERRORS = 10  # bad commands and failed logins before the session is closed with BYE
IDLE_TIMEOUT = 1800.0  # seconds a logged-in client may stay silent (as IMAP's default)
FLUSH_THRESHOLD = 1 << 20


class State(enum.Enum):
    NONAUTH = "nonauth"
    AUTHENTICATED = "authenticated"
    LOGOUT = "logout"


_ANY = frozenset({"CAPABILITY", "NOOP", "LOGOUT"})
# RFC 5804 §2: STARTTLS and AUTHENTICATE before login, the script verbs after it.
LEGAL_VERBS: dict[State, frozenset[str]] = {
    State.NONAUTH: _ANY | {"STARTTLS", "AUTHENTICATE"},
    State.AUTHENTICATED: _ANY | {"HAVESPACE", "PUTSCRIPT", "LISTSCRIPTS", "SETACTIVE", "GETSCRIPT", "DELETESCRIPT",
                                 "RENAMESCRIPT", "CHECKSCRIPT", "UNAUTHENTICATE"},
    State.LOGOUT: frozenset(),
}
# What a verb in the wrong state is told.
_WRONG_STATE = {State.NONAUTH: replies.NO_NOT_AUTHENTICATED, State.AUTHENTICATED: replies.NO_ALREADY_AUTHENTICATED}


class ManageSieveSession:
    """Serve one ManageSieve client until it logs out, drops or is closed for misbehaving."""

    BUSY_REPLY = replies.BYE_BUSY + b"\r\n"

    def __init__(self, conn, ctx, listener: str):
        # Connection lifetime
        self.conn = conn  # appliance.net Connection; only this thread touches it
        self.ctx = ctx  # ServerContext: config, store, auth, tls
        self.listener = listener  # "managesieve": STARTTLS on the plain port
        self.reader = CommandReader(conn, LINE_LIMIT)
        self.state = State.NONAUTH  # advanced by AUTHENTICATE, back by UNAUTHENTICATE, ended by LOGOUT
        self.errors = 0  # counted errors so far; the session ends at MAX_ERRORS
        self.unflushed = 0  # bytes written since the last flush; bounds a pipelined batch
        # Authenticated lifetime: set by AUTHENTICATE, cleared by UNAUTHENTICATE
        self.user = None  # the store's User

    # -- the loop -------------------------------------------------------------

    def run(self) -> None:
        # A silent client that has not logged in only holds a connection slot.
        self.conn.timeout = self.ctx.config.limits.idle_timeout_unauthenticated
        self.conn.info.state = self.state.value
        self._send_lines(self._capabilities())  # RFC 5804 §1.7: the greeting
        self._flush()
        try:
            while self.state is not State.LOGOUT:
                self._next_command()
                if self.errors >= MAX_ERRORS:
                    self._send(replies.BYE_TOO_MANY_ERRORS)
                    break
                if not self.conn.has_buffered_line() or self.unflushed > FLUSH_THRESHOLD:
                    self._flush()
        except IdleTimeout:
            self._send(replies.BYE_IDLE_TIMEOUT)
        except ConnectionClosed:
            if not self.conn.stopping:
                raise
            self._send(replies.BYE_SHUTDOWN)  # RFC 5804 §1.3: TRYLATER, the client may come back
        except (LiteralTooBig, CommandTooLong) as e:
            # Past these the stream can no longer be framed: answer and close.
            self._send(replies.BYE_LITERAL_TOO_BIG if isinstance(e, LiteralTooBig) else replies.BYE_COMMAND_TOO_LONG)
        self._flush()

    def _next_command(self) -> None:
        try:
            data = self.reader.read(*self._literal_limits())
        except LineTooLong:
            self._fail(CommandSyntaxError(replies.NO_LINE_TOO_LONG))
            return
        except LiteralTooBig as e:
            if not e.framed:
                raise
            self.conn.note_command(f"(a literal of {e.size} octets, over the limit)")
            self._fail(UserError(replies.NO_MAXSIZE))
            return
        self._dispatch(data)

    def _literal_limits(self) -> tuple[int, int]:
        if self.state is State.AUTHENTICATED:
            size = self.ctx.config.managesieve.max_script_size
            return size, DROP_FACTOR * size
        return UNAUTHENTICATED_LITERAL_LIMIT, UNAUTHENTICATED_LITERAL_LIMIT

    def _dispatch(self, data: bytes) -> None:
        command = parse_command(data)
        self.conn.note_command(_redacted(command, data))
        try:
            if isinstance(command, InvalidCommand):
                raise CommandSyntaxError(command.reply)
            if command.verb not in LEGAL_VERBS[self.state]:
                raise CommandSyntaxError(_WRONG_STATE[self.state])
            self._handlers[command.verb](self, command)
        except ManageSieveError as error:
            self._fail(error)
        except (ConnectionClosed, IdleTimeout, LiteralTooBig, CommandTooLong):  # reads inside a handler (SASL)
            raise
        except Exception:  # a store or programming failure must not end the server
            log.exception("session %s: managesieve %s failed", self.conn.info.id, command.verb)
            self._fail(ServerError())

    def _fail(self, error: ManageSieveError) -> None:
        if error.counts_as_error:
            self.errors += 1
        self._send(error.reply)

    # -- writing ----------------------------------------------------------------

    def _send(self, line: bytes) -> None:
        self.conn.write(line + b"\r\n")
        self.unflushed += len(line) + 2

    def _send_lines(self, lines: list[bytes]) -> None:
        for line in lines:
            self._send(line)

    def _flush(self) -> None:
        self.conn.flush()
        self.unflushed = 0

    # -- any state --------------------------------------------------------------

    def cmd_CAPABILITY(self, command: Command) -> None:
        """RFC 5804 §2.4."""
        self._send_lines(self._capabilities())

    def cmd_NOOP(self, command: Command) -> None:
        """RFC 5804 §2.13: the optional argument comes back as a TAG response code."""
        self._send(replies.noop(command.args[0] if command.args else None))

    def cmd_LOGOUT(self, command: Command) -> None:
        """RFC 5804 §2.3."""
        self.state = State.LOGOUT
        self.conn.info.state = self.state.value
        self._send(replies.OK_LOGOUT)

    def _capabilities(self) -> list[bytes]:
        authenticated = self.state is State.AUTHENTICATED
        return replies.capabilities(
            implementation=IMPLEMENTATION,
            sasl=["PLAIN"] if not authenticated and self._login_allowed() else [],
            sieve=sieve.CAPABILITIES,
            starttls=not authenticated and not self.conn.is_tls,
            max_redirects=sieve.MAX_REDIRECTS,
            owner=self.user.address if authenticated else None,
        )

    # -- NONAUTH ----------------------------------------------------------------

    def cmd_STARTTLS(self, command: Command) -> None:
        """RFC 5804 §2.2: nothing sent before the handshake is used; then the capabilities again."""
        if self.conn.is_tls:
            raise CommandSyntaxError(replies.NO_TLS_ACTIVE)
        self._send(replies.OK_BEGIN_TLS)
        self._flush()
        self.conn.start_tls()  # discards whatever the client pipelined after STARTTLS
        self._send_lines(self._capabilities())

    def cmd_AUTHENTICATE(self, command: Command) -> None:
        """RFC 5804 §2.1, PLAIN only (RFC 4616), inside TLS only."""
        if not self._login_allowed():
            raise AuthFailed(replies.NO_ENCRYPT_NEEDED)
        if command.args[0].upper() != b"PLAIN":
            raise CommandSyntaxError(replies.NO_UNSUPPORTED_MECHANISM)
        encoded = command.args[1] if len(command.args) > 1 else self._sasl_response()
        if encoded == b"*":  # RFC 5804 §2.1: the client cancels the exchange
            raise UserError(replies.NO_AUTH_CANCELLED)
        try:
            authzid, authcid, password = decode_plain(encoded)
        except SaslError:
            raise CommandSyntaxError(replies.NO_BAD_SASL) from None
        # We do not let one user act as another (RFC 4616 §2 authzid).
        if authzid and authzid.lower() != authcid.lower():
            raise AuthFailed()
        if self.ctx.auth.blocked(self.conn):
            raise AuthFailed(replies.NO_AUTH_BLOCKED)
        user = self.ctx.auth.login(authcid, password, self.conn)
        if user is None:
            raise AuthFailed()
        self.user = user
        self.state = State.AUTHENTICATED
        self.conn.timeout = IDLE_TIMEOUT
        self.conn.info.user = user.address
        self.conn.info.state = self.state.value
        log.info("session %s: managesieve login %s", self.conn.info.id, user.address)
        self._send(replies.OK_LOGGED_IN)

    def _sasl_response(self) -> bytes:
        """Send the empty challenge and read the client's answer, a string (RFC 5804 §2.1)."""
        self._send(replies.SASL_CONTINUE)
        self._flush()
        try:
            data = self.reader.read(UNAUTHENTICATED_LITERAL_LIMIT, UNAUTHENTICATED_LITERAL_LIMIT)
        except LineTooLong:
            raise CommandSyntaxError(replies.NO_BAD_SASL) from None
        response = parse_string_line(data)
        if response is None:
            raise CommandSyntaxError(replies.NO_BAD_SASL)
        return response

    def _login_allowed(self) -> bool:
        # Only inside TLS, loopback included; the config switch opens plaintext for
        # trusted networks (decided by ctx.auth, as for IMAP and POP3).
        return self.ctx.auth.plaintext_allowed(self.conn)

    # -- AUTHENTICATED ----------------------------------------------------------

    def cmd_UNAUTHENTICATE(self, command: Command) -> None:
        """RFC 5804 §2.14.1: back to NONAUTH on the same connection."""
        log.info("session %s: managesieve logout %s", self.conn.info.id, self.user.address)
        self.user = None
        self.state = State.NONAUTH
        self.conn.timeout = self.ctx.config.limits.idle_timeout_unauthenticated
        self.conn.info.user = ""
        self.conn.info.state = self.state.value
        self._send(replies.OK_LOGGED_OUT)

    def cmd_HAVESPACE(self, command: Command) -> None:
        """RFC 5804 §2.5: would a PUTSCRIPT of this name and size succeed?"""
        name = _script_name(command.args[0])
        limits = self.ctx.config.managesieve
        if command.args[1] > limits.max_script_size:
            raise UserError(replies.NO_MAXSIZE)
        store = self.ctx.store
        names = {s.name for s in store.list_sieve_scripts(self.user.id)}
        if name not in names and len(names) >= limits.max_scripts:
            raise UserError(replies.NO_MAXSCRIPTS)
        self._send(replies.OK_SPACE)

    def cmd_PUTSCRIPT(self, command: Command) -> None:
        """RFC 5804 §2.6: checked before it is stored; an invalid script stores nothing."""
        name = _script_name(command.args[0])
        script, commands = self._checked_script(command.args[1])
        try:
            self.ctx.store.put_sieve_script(self.user.id, name, script, self.ctx.config.managesieve.max_scripts)
        except QuotaExceeded:
            raise UserError(replies.NO_MAXSCRIPTS) from None
        log.info("session %s: managesieve %s stored script %r (%d octets)", self.conn.info.id, self.user.address,
                 name, len(command.args[1]))
        self._send(self._warnings(commands) or replies.OK_STORED)

    def cmd_CHECKSCRIPT(self, command: Command) -> None:
        """RFC 5804 §2.12: PUTSCRIPT's check without storing."""
        _, commands = self._checked_script(command.args[0])
        self._send(self._warnings(commands) or replies.OK_VALID)

    def _checked_script(self, raw: bytes) -> tuple[str, list[sieve.Command]]:
        """The script as text and as commands, checked as the account page's editor checks
        it (`appliance.mda.scripts`): within the size limit, UTF-8, parsed."""
        try:
            return scripts.checked_script(raw, self.ctx.config.managesieve.max_script_size)
        except scripts.TooBig:
            raise UserError(replies.NO_MAXSIZE) from None
        except scripts.NotUtf8:
            raise UserError(replies.NO_NOT_UTF8) from None
        except scripts.Invalid as e:
            raise UserError(replies.invalid_script(e.line, e.reason)) from None

    def _warnings(self, commands: list[sieve.Command]) -> bytes | None:
        """OK (WARNINGS) for a valid script that files into folders the user lacks."""
        missing = rules.missing_folders(self.ctx.store, self.user.id, commands)
        if not missing:
            return None
        return replies.stored_with_warnings([replies.missing_folder(f.line, f.folder) for f in missing])

    def cmd_LISTSCRIPTS(self, command: Command) -> None:
        """RFC 5804 §2.7."""
        scripts = self.ctx.store.list_sieve_scripts(self.user.id)
        self._send_lines(replies.script_listing((s.name, s.active) for s in scripts))

    def cmd_SETACTIVE(self, command: Command) -> None:
        """RFC 5804 §2.8: "" deactivates whichever script is active."""
        name = _script_name(command.args[0]) if command.args[0] else None
        try:
            self.ctx.store.activate_sieve_script(self.user.id, name)
        except NotFound:
            raise UserError(replies.NO_NONEXISTENT) from None
        log.info("session %s: managesieve %s activated %r", self.conn.info.id, self.user.address, name)
        self._send(replies.OK_ACTIVATED if name is not None else replies.OK_DEACTIVATED)

    def cmd_GETSCRIPT(self, command: Command) -> None:
        """RFC 5804 §2.9."""
        try:
            script = self.ctx.store.get_sieve_script(self.user.id, _script_name(command.args[0]))
        except NotFound:
            raise UserError(replies.NO_NONEXISTENT) from None
        self._send_lines(replies.script_text(script))

    def cmd_DELETESCRIPT(self, command: Command) -> None:
        """RFC 5804 §2.10: the active script is refused with NO (ACTIVE)."""
        try:
            self.ctx.store.delete_sieve_script(self.user.id, _script_name(command.args[0]))
        except NotFound:
            raise UserError(replies.NO_NONEXISTENT) from None
        except ScriptActive:
            raise UserError(replies.NO_ACTIVE) from None
        self._send(replies.OK_DELETED)

    def cmd_RENAMESCRIPT(self, command: Command) -> None:
        """RFC 5804 §2.11.1: an active script stays active under its new name."""
        old, new = _script_name(command.args[0]), _script_name(command.args[1])
        try:
            self.ctx.store.rename_sieve_script(self.user.id, old, new)
        except NotFound:
            raise UserError(replies.NO_NONEXISTENT) from None
        except AlreadyExists:
            raise UserError(replies.NO_ALREADYEXISTS) from None
        self._send(replies.OK_RENAMED)


ManageSieveSession._handlers = {
    verb: getattr(ManageSieveSession, "cmd_" + verb)
    for verbs in LEGAL_VERBS.values()
    for verb in verbs
}


def _script_name(raw: bytes) -> str:
    """RFC 5804 §1.6: a name is refused, not stored, unless ``scripts.checked_name`` allows it."""
    try:
        return scripts.checked_name(raw)
    except scripts.BadName:
        raise CommandSyntaxError(replies.NO_BAD_NAME) from None


def _redacted(command: Command | InvalidCommand, data: bytes) -> str:
    """The command as the session registry and the log may show it: no secrets, no script."""
    if command.verb == "AUTHENTICATE":
        return "AUTHENTICATE ***"  # the initial response holds the password
    return data.split(b"\n", 1)[0].rstrip(b"\r")[:100].decode("utf-8", "replace")
