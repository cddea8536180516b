"""The SMTP server state machine for 25 (MX), 587 (submission) and 465 (SMTPS).

One ``SmtpSession`` per connection, run by the connection's thread. The legal verbs of
each state are written once, as data (``LEGAL``); one gate (``handle``) checks them
before dispatching to ``cmd_<VERB>``. Wrong state is 503, an unknown verb is 500.

Pipelining (RFC 2920): replies are written to the connection's buffer and flushed only
when no further complete command line is buffered, so a pipelined batch gets its replies
in order and in one packet.

Message content (``receive_data``/``cmd_BDAT``) is read in large blocks, never line by
line: DATA ends only at <CRLF>.<CRLF> (RFC 5321 §4.1.1.4), and a bare CR or LF never
ends anything. Bare CR/LF inside the content is handled by ``smtp.bare_newline``:

* ``reject`` (default, like Postfix's ``smtpd_forbid_bare_newline = yes`` but without
  dropping the connection): the content is read to the real end marker and refused
  with 550 5.5.2; the session continues, since the framing was never in doubt.
* ``normalize`` (Postfix 3.9's ``normalize``): each bare CR or LF becomes CRLF, then
  dot-unstuffing applies to every line.

Command lines ending in a bare LF are accepted in both modes (no end-of-data ambiguity
is possible there); a bare CR inside a command line is refused as a bad character.

The 250 for a message is sent only after ``appliance.mta.router.accept`` returns, i.e.
after the store committed and fsynced it.
"""

from __future__ import annotations

import enum
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from email.utils import formatdate

from appliance.auth.sasl import SaslError, decode_plain, decode_text
from appliance.mda.errors import Refused
from appliance.mta import router
from appliance.mta.router import Envelope, Kind, Recipient
from appliance.net.conn import ConnectionClosed, IdleTimeout, LineTooLong
from appliance.smtp import replies as R
from appliance.smtp.errors import CommandSyntaxError, ServerError, SmtpError, UserError
from appliance.smtp.parse import (FOREIGN_VERBS, VERBS, Auth, Bdat, Command, Ehlo, Expn, Helo, Help,
                                  InvalidCommand, Mail, MailParams, Path, Rcpt, Unknown, Vrfy, parse_command,
                                  parse_mailbox)
from appliance.smtp.replies import Reply, format_reply
from appliance.store import QuotaExceeded, StorageFull

log = logging.getLogger("kotakpos.smtp")

SUBMISSION_LISTENERS = frozenset({"submission", "smtps"})
AUTH_LINE_LIMIT = 12288  # RFC 4954 §4: a SASL line may be this long
MAX_TEXT_LINE = 998  # RFC 5322 §2.1.1, without the CRLF
END_OF_DATA = b"\r\n.\r\n"


class State(enum.Enum):
    GREETED = "greeted"  # banner sent, no EHLO/HELO yet
    READY = "ready"  # EHLO/HELO done, no transaction
    MAIL = "mail"  # MAIL accepted, no recipient yet
    RCPT = "rcpt"  # at least one recipient accepted
    BDAT = "bdat"  # BDAT chunks received, the LAST one not yet


_ALWAYS = frozenset({"NOOP", "RSET", "QUIT", "HELP", "VRFY", "EXPN"})

# Commands that move no mail. Past cfg.junk_command_limit of them without a message
# accepted, each counts as an error (like Postfix's smtpd_junk_command_limit), so a
# client cannot hold a connection open forever with NOOP or harvest with VRFY.
JUNK = frozenset({"NOOP", "RSET", "HELP", "VRFY", "EXPN"})

# RFC 5321 §4.1.4 (command order); RFC 3030 §2 (BDAT); RFC 3207 and 4954 (no STARTTLS or
# AUTH inside a transaction). EHLO/HELO in a transaction resets it (RFC 5321 §4.1.4).
LEGAL: dict[State, frozenset[str]] = {
    State.GREETED: _ALWAYS | {"EHLO", "HELO"},
    State.READY: _ALWAYS | {"EHLO", "HELO", "MAIL", "STARTTLS", "AUTH"},
    State.MAIL: _ALWAYS | {"EHLO", "HELO", "RCPT"},
    State.RCPT: _ALWAYS | {"EHLO", "HELO", "RCPT", "DATA", "BDAT"},
    State.BDAT: _ALWAYS | {"BDAT"},
}

# The reply for a verb in a state where it is not legal; anything else is R503_BAD_SEQUENCE.
WRONG_STATE: dict[tuple[State, str], Reply] = {
    (State.READY, "RCPT"): R.R503_NEED_MAIL,
    (State.READY, "DATA"): R.R503_NEED_MAIL,
    (State.READY, "BDAT"): R.R503_NEED_MAIL,
    (State.MAIL, "MAIL"): R.R503_NESTED_MAIL,
    (State.MAIL, "DATA"): R.R503_NEED_RCPT,
    (State.MAIL, "BDAT"): R.R503_NEED_RCPT,
    (State.MAIL, "AUTH"): R.R503_AUTH_IN_TRANSACTION,
    (State.RCPT, "MAIL"): R.R503_NESTED_MAIL,
    (State.RCPT, "AUTH"): R.R503_AUTH_IN_TRANSACTION,
    (State.BDAT, "DATA"): R.R503_DATA_AFTER_BDAT,
    (State.BDAT, "MAIL"): R.R503_NESTED_MAIL,
    (State.BDAT, "AUTH"): R.R503_AUTH_IN_TRANSACTION,
}

HELP_SYNTAX = {
    "EHLO": "EHLO hostname",
    "HELO": "HELO hostname",
    "MAIL": "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME|BINARYMIME] [SMTPUTF8] [RET=FULL|HDRS] [ENVID=id]",
    "RCPT": "RCPT TO:<address> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=type;address]",
    "DATA": "DATA, then the message, ended by a line with a single dot",
    "BDAT": "BDAT size [LAST], then exactly size octets",
    "RSET": "RSET",
    "NOOP": "NOOP",
    "QUIT": "QUIT",
    "HELP": "HELP [command]",
    "VRFY": "VRFY address",
    "EXPN": "EXPN list",
    "STARTTLS": "STARTTLS",
    "AUTH": "AUTH PLAIN|LOGIN [initial-response]",
}

_HEADER_END = re.compile(rb"\r\n\r\n")
_HAS_MESSAGE_ID = re.compile(rb"(?im)^message-id[ \t]*:")
_HAS_DATE = re.compile(rb"(?im)^date[ \t]*:")
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
# Each starts with a literal, so the regex engine skips to candidates in C: one quick pass
# over the content each, where one pattern with both alternatives would crawl.
_BARE_CR = re.compile(rb"\r(?!\n)")
_BARE_LF = re.compile(rb"\n(?<!\r\n)")


_date_of_second: tuple[int, str] = (0, "")


def date_now() -> str:
    """RFC 5322 date-time of now, local zone; made once a second, not once a message."""
    global _date_of_second
    now = time.time()
    second, text = _date_of_second
    if int(now) != second:
        text = formatdate(now, localtime=True)
        _date_of_second = (int(now), text)
    return text


class DataOutcome(enum.Enum):
    NOMINAL = "nominal"  # content is fine so far
    TOO_BIG = "too-big"  # passed the size limit: read on to the end marker, store nothing
    BARE_NEWLINE = "bare-newline"  # bare CR or LF under the reject policy
    LINE_TOO_LONG = "line-too-long"  # a text line longer than 998 octets


def read_data(conn, limit: int) -> tuple[bytes | None, DataOutcome]:
    """Read DATA content up to <CRLF>.<CRLF>, in blocks; bytes after it are given back.

    Returns the content still dot-stuffed, with the CRLF of its last line and without the
    end marker, or None with TOO_BIG once ``limit`` is passed (the rest is read and dropped
    so the session can answer and go on).
    """
    # The DATA command line ended with CRLF, so the content starts at a line start: a
    # leading CRLF lets one search find the end marker of an empty message too.
    buf = bytearray(b"\r\n")
    tail = b""  # last bytes seen once over the limit, to find a marker split across reads
    too_big = False
    while True:
        block = conn.read_some()
        if too_big:
            window = tail + block
            end = window.find(END_OF_DATA)
            if end >= 0:
                conn.unread(window[end + len(END_OF_DATA):])
                return None, DataOutcome.TOO_BIG
            tail = window[-(len(END_OF_DATA) - 1):]
            continue
        start = max(0, len(buf) - (len(END_OF_DATA) - 1))
        buf += block
        end = buf.find(END_OF_DATA, start)
        if end >= 0:
            conn.unread(bytes(buf[end + len(END_OF_DATA):]))
            if end > limit:
                return None, DataOutcome.TOO_BIG
            with memoryview(buf) as view:  # one copy of the content, not two
                return bytes(view[2:end + 2]), DataOutcome.NOMINAL
        if len(buf) - 2 > limit:
            tail = bytes(buf[-(len(END_OF_DATA) - 1):])
            buf = bytearray()
            too_big = True


def unstuff(content: bytes) -> bytes:
    """RFC 5321 §4.5.2: drop the first dot of every line that starts with one. Exact,
    because a line of a single dot cannot occur inside content framed by the end marker."""
    if b"\r\n." in content:
        content = content.replace(b"\r\n.", b"\r\n")
    return content[1:] if content[:1] == b"." else content  # the first line has no CRLF before it


def has_bare_newline(content: bytes) -> bool:
    return _BARE_CR.search(content) is not None or _BARE_LF.search(content) is not None


def lines_fit(content: bytes, limit: int) -> bool:
    """No line (split at CRLF) is longer than ``limit``. Jumps from the last CRLF of one
    window of ``limit`` + 2 octets to the next, so it looks at a few places per KiB
    instead of cutting the content into lines."""
    pos, size = 0, len(content)
    while size - pos > limit:
        end = content.rfind(b"\r\n", pos, pos + limit + 2)
        if end < 0:
            return False
        pos = end + 2
    return True


def check_content(content: bytes, policy: str, *, stuffed: bool, binary: bool) -> tuple[bytes, DataOutcome]:
    """Apply the bare-CR/LF policy, dot-unstuffing (DATA only) and the line-length limit."""
    if binary:  # BODY=BINARYMIME: octets, not lines (RFC 3030 §3)
        return content, DataOutcome.NOMINAL
    if has_bare_newline(content):
        if policy != "normalize":
            return content, DataOutcome.BARE_NEWLINE
        content = _BARE_CR_OR_LF.sub(b"\r\n", content)
    if stuffed:
        content = unstuff(content)
    if not lines_fit(content, MAX_TEXT_LINE):
        return content, DataOutcome.LINE_TOO_LONG
    return content, DataOutcome.NOMINAL


OUTCOME_REPLY = {  # TOO_BIG names the configured limit: R.message_too_big
    DataOutcome.BARE_NEWLINE: R.R550_BARE_NEWLINE,
    DataOutcome.LINE_TOO_LONG: R.R550_LINE_TOO_LONG,
}


@dataclass
class Transaction:
    """One mail transaction: from MAIL to the end of DATA/last BDAT, RSET or EHLO."""

    sender: Path | None  # set by MAIL; None is the null reverse-path
    params: MailParams  # MAIL parameters (SIZE, BODY, SMTPUTF8, DSN fields)
    recipients: list[Recipient] = field(default_factory=list)  # added by each accepted RCPT
    chunks: bytearray = field(default_factory=bytearray)  # BDAT content so far

    @property
    def sender_address(self) -> str:
        return self.sender.address if self.sender else ""


class SmtpSession:
    BUSY_REPLY = format_reply(R.R421_TOO_BUSY)

    _handlers: dict  # verb -> cmd_VERB, built once below the class

    def __init__(self, conn, ctx, listener: str):
        # -- connection lifetime --
        self.conn = conn  # the client's connection (net owns the socket)
        self.ctx = ctx  # config, store, auth, tls, hostname
        self.cfg = ctx.config.smtp  # our config section, read by every handler
        self.listener = listener  # smtp, submission or smtps
        self.submission = listener in SUBMISSION_LISTENERS  # AUTH required before MAIL
        # May relay without AUTH. Loopback counts only when listed: a webmail on this box
        # should authenticate like any other client.
        self.trusted = ctx.auth.trusted.contains(conn.peer_ip)
        self.state = State.GREETED  # see LEGAL; changed only through set_state
        self.client_name = ""  # EHLO/HELO argument, for the Received header
        self.esmtp = False  # EHLO (not HELO) was used: parameters allowed
        self.user = None  # store User after a successful AUTH
        self.errors = 0  # error replies so far; at cfg.max_errors we say 421 and close
        self.messages = 0  # messages accepted on this connection
        self.lines = 0  # command lines read, to spot a first line that is not SMTP
        self.junk = 0  # JUNK commands since the last accepted message
        self.done = False  # set by QUIT and fatal errors: run() returns
        # -- transaction lifetime --
        self.txn: Transaction | None = None  # replaced, never cleared field by field

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        self.reply(R.greeting(self.ctx.hostname))
        try:
            while not self.done:
                if not self.conn.has_buffered_line():
                    self.conn.flush()
                self.conn.timeout = self.timeout(self.cfg.command_timeout)
                try:
                    line = self.conn.read_command_line(self.cfg.command_line_limit)
                except LineTooLong:
                    self.reply(R.R500_LINE_TOO_LONG)
                    continue
                self.handle(line)
        except IdleTimeout:
            self.reply(R.R421_TIMEOUT)
        except ConnectionClosed:
            if not self.conn.stopping:
                raise
            self.reply(R.R421_SHUTTING_DOWN)  # RFC 5321 §3.8: say so before closing
        finally:
            try:
                self.conn.flush()
            except ConnectionClosed:
                pass

    def handle(self, line: bytes) -> None:
        """The one gate: parse, check the state, dispatch, turn errors into replies."""
        self.lines += 1
        cmd = parse_command(line)
        self.conn.note_command(self._loggable(cmd, line))
        if isinstance(cmd, Unknown):
            if self.lines == 1 and cmd.verb.upper() in FOREIGN_VERBS:
                self.fatal(R.R500_NOT_SMTP)
            else:
                self.reply(R.R500_UNKNOWN)
            return
        if isinstance(cmd, InvalidCommand) and cmd.verb in ("", "BDAT"):
            # No usable verb; or a BDAT whose size we cannot read, so the chunk that follows
            # cannot be framed: answer, then close.
            if cmd.verb == "BDAT":
                self.fatal(cmd.reply)
            else:
                self.reply(cmd.reply)
            return
        if cmd.verb not in LEGAL[self.state]:
            if isinstance(cmd, Bdat):
                self.read_chunk(cmd.size, keep=False)  # RFC 3030 §2: the chunk is read anyway
            self.reply(R.R503_NEED_HELO if self.state is State.GREETED
                       else WRONG_STATE.get((self.state, cmd.verb), R.R503_BAD_SEQUENCE))
            return
        if isinstance(cmd, InvalidCommand):
            self.reply(cmd.reply)
            return
        if cmd.verb in JUNK:
            self.junk += 1
            if self.junk > self.cfg.junk_command_limit:
                self.count_error()
                if self.done:
                    return
        try:
            self._handlers[cmd.verb](self, cmd)
        except SmtpError as e:
            if isinstance(e, ServerError):
                log.exception("session %s: %s", self.conn.info.id, e.log_detail)
            elif e.log_detail:
                log.info("session %s: %s: %s", self.conn.info.id, cmd.verb, e.log_detail)
            if e.close:
                self.fatal(e.reply)
            else:
                self.reply(e.reply)

    @staticmethod
    def _loggable(cmd: Command, line: bytes) -> str:
        if isinstance(cmd, Auth):
            return f"AUTH {cmd.mechanism}" + (" ***" if cmd.initial is not None else "")
        if cmd.verb == "AUTH":  # a malformed AUTH may still carry a secret
            return "AUTH ***"
        return line.rstrip(b"\r\n")[:200].decode("utf-8", "backslashreplace")

    def timeout(self, normal: float) -> float:
        """RFC 5321 §4.5.3.2's timeout, or the short one while connections pile up: then
        silent clients (slowloris) give their slots back in seconds, as in Postfix's
        stress mode."""
        if self.conn.server_load() >= self.cfg.stress_load:
            return min(normal, self.cfg.stress_timeout)
        return normal

    # -- replies ----------------------------------------------------------------------------

    def reply(self, r: Reply) -> None:
        """Queue a reply; count errors, and end the session after too many."""
        self.conn.write(r.wire)
        if r.is_error and r.code != 421:
            self.count_error()

    def count_error(self) -> None:
        self.errors += 1
        if self.errors >= self.cfg.max_errors:
            self.fatal(R.R421_TOO_MANY_ERRORS)

    def fatal(self, r: Reply) -> None:
        self.conn.write(format_reply(r))
        self.done = True

    def set_state(self, state: State) -> None:
        self.state = state
        self.conn.info.state = state.value

    def reset_transaction(self) -> None:
        self.txn = None
        if self.state is not State.GREETED:
            self.set_state(State.READY)

    # -- policy questions -------------------------------------------------------------------

    @property
    def may_relay(self) -> bool:
        return self.user is not None or self.trusted

    @property
    def plaintext_auth_allowed(self) -> bool:
        return self.ctx.auth.plaintext_allowed(self.conn)

    # -- session commands -------------------------------------------------------------------

    def cmd_EHLO(self, cmd: Ehlo) -> None:
        """RFC 5321 §4.1.1.1; resets any transaction."""
        self.client_name, self.esmtp = cmd.name, True
        self.txn = None
        self.set_state(State.READY)
        self.reply(R.ehlo_reply(
            self.ctx.hostname, cmd.name,
            size_limit=self.ctx.config.limits.message_size,
            is_tls=self.conn.is_tls,
            authenticated=self.user is not None,
            plaintext_auth_allowed=self.plaintext_auth_allowed,
        ))

    def cmd_HELO(self, cmd: Helo) -> None:
        self.client_name, self.esmtp = cmd.name, False
        self.txn = None
        self.set_state(State.READY)
        self.reply(R.helo_reply(self.ctx.hostname, cmd.name))

    def cmd_NOOP(self, cmd) -> None:
        self.reply(R.R250_OK)

    def cmd_RSET(self, cmd) -> None:
        """RFC 5321 §4.1.1.5; also aborts a BDAT sequence (RFC 3030 §2)."""
        self.reset_transaction()
        self.reply(R.R250_RESET)

    def cmd_QUIT(self, cmd) -> None:
        self.conn.write(format_reply(R.R221_BYE))
        self.done = True

    def cmd_HELP(self, cmd: Help) -> None:
        if not cmd.topic:
            self.reply(R.R214_HELP)
        elif cmd.topic.upper() in HELP_SYNTAX:
            self.reply(R.help_topic(HELP_SYNTAX[cmd.topic.upper()]))
        else:
            self.reply(R.R504_HELP_TOPIC)

    def cmd_VRFY(self, cmd: Vrfy) -> None:
        """RFC 5321 §3.5: 252 unless authenticated (no address harvesting)."""
        if self.user is None:
            self.reply(R.R252_CANNOT_VRFY)
            return
        path = self._address_argument(cmd.argument, R.R501_VRFY_SYNTAX)
        found = router.route(self.ctx.store, [path.address], self.ctx.srs, self.ctx.config.server.admin_address)[0]
        if found.kind is Kind.UNKNOWN:
            raise UserError(R.R550_NO_SUCH_USER)
        if found.kind is Kind.REMOTE or not found.users:
            self.reply(R.R252_CANNOT_VRFY)
            return
        self.reply(R.vrfy_ok(path.address))

    def cmd_EXPN(self, cmd: Expn) -> None:
        """RFC 5321 §3.5.2: list a distribution list's members, to authenticated users only."""
        if self.user is None:
            self.reply(R.R252_CANNOT_VRFY)
            return
        path = self._address_argument(cmd.argument, R.R501_EXPN_SYNTAX)
        members = self.ctx.store.alias_targets(path.address)
        if not members:
            raise UserError(R.R550_NO_SUCH_USER)
        self.reply(R.expn_list(members))

    @staticmethod
    def _address_argument(text: str, syntax: Reply) -> Path:
        inner = text[1:-1] if text.startswith("<") and text.endswith(">") else text
        try:
            path = parse_mailbox(inner, allow_source_route=False)
        except ValueError:
            raise CommandSyntaxError(syntax) from None
        if not path.domain:
            raise CommandSyntaxError(syntax)
        return path

    def cmd_STARTTLS(self, cmd) -> None:
        """RFC 3207: after the handshake the session starts over, and nothing the client
        sent before it (a pipelined command in the same packet) is ever read."""
        if self.conn.is_tls:
            raise UserError(R.R503_TLS_ACTIVE)
        self.conn.write(format_reply(R.R220_READY_TLS))
        self.conn.start_tls()  # flushes our reply, discards buffered plaintext
        self.client_name, self.esmtp, self.user = "", False, None
        self.txn = None
        self.set_state(State.GREETED)

    def cmd_AUTH(self, cmd: Auth) -> None:
        """RFC 4954 with PLAIN (RFC 4616) and LOGIN; only inside TLS unless allowed."""
        if self.user is not None:
            raise UserError(R.R503_ALREADY_AUTHENTICATED)
        if not self.plaintext_auth_allowed:
            raise UserError(R.R538_ENCRYPTION_REQUIRED)
        if cmd.mechanism not in ("PLAIN", "LOGIN"):
            raise UserError(R.R504_AUTH_MECHANISM)
        if self.ctx.auth.blocked(self.conn):
            raise UserError(R.R454_AUTH_TEMPORARY, "address blocked after failed logins")
        try:
            if cmd.mechanism == "PLAIN":
                response = cmd.initial if cmd.initial is not None else self.sasl_step(R.R334_EMPTY)
                authzid, name, password = decode_plain(response)
                if authzid and authzid.lower() != name.lower():
                    raise UserError(R.R535_AUTH_FAILED, "authzid differs from authcid")
            else:
                name = decode_text(cmd.initial if cmd.initial else self.sasl_step(R.R334_USERNAME))
                password = decode_text(self.sasl_step(R.R334_PASSWORD))
        except SaslError as e:
            raise CommandSyntaxError(R.R501_BAD_BASE64, str(e)) from None
        user = self.ctx.auth.login(name, password, self.conn)
        if user is None:
            raise UserError(R.R535_AUTH_FAILED)
        self.user = user
        self.conn.info.user = user.address
        self.reply(R.R235_AUTH_OK)

    def sasl_step(self, challenge: Reply) -> str:
        """Send a 334 challenge and read the client's line; "*" cancels (RFC 4954 §4)."""
        self.conn.write(format_reply(challenge))
        self.conn.flush()
        try:
            line = self.conn.read_line(AUTH_LINE_LIMIT)
        except LineTooLong:
            raise CommandSyntaxError(R.R500_LINE_TOO_LONG) from None
        text = line.rstrip(b"\r\n").decode("ascii", "replace")
        if text == "*":
            raise CommandSyntaxError(R.R501_AUTH_CANCELLED)
        return text

    # -- the mail transaction -----------------------------------------------------------------

    def cmd_MAIL(self, cmd: Mail) -> None:
        if self.submission and self.user is None:
            # RFC 6409 §4.3: submission needs authentication, and passwords need TLS first
            raise UserError(R.R530_NEED_AUTH if self.plaintext_auth_allowed else R.R530_NEED_TLS)
        if self.messages >= self.cfg.max_messages_per_session:
            raise UserError(R.R421_TOO_MANY_MESSAGES, close=True)
        if cmd.has_params and not self.esmtp:
            raise CommandSyntaxError(R.R555_UNKNOWN_PARAMETER, "parameters after HELO")
        if cmd.path and cmd.path.is_utf8 and not cmd.params.smtputf8:
            raise UserError(R.R553_UTF8_NEEDS_SMTPUTF8)
        if cmd.params.size is not None and cmd.params.size > self.ctx.config.limits.message_size:
            raise UserError(R.message_too_big(self.ctx.config.limits.message_size))  # RFC 1870 §6.1
        # addresses, aliases and rules any worker changed before this transaction are known
        self.ctx.store.catch_up_if_behind()
        if self.user is not None and not self._owns(cmd.path):
            sender = cmd.path.address if cmd.path else "<>"
            raise UserError(R.R553_NOT_YOUR_ADDRESS, f"{self.user.address} may not send as {sender}")
        self.txn = Transaction(cmd.path, cmd.params)
        self.set_state(State.MAIL)
        self.reply(R.R250_SENDER_OK)

    def _owns(self, path: Path | None) -> bool:
        """The sender is the user's own address or an alias that reaches the user."""
        if path is None:
            return False
        if path.address.lower() == self.user.address.lower():
            return True
        resolution = self.ctx.store.resolve(path.address)
        return resolution is not None and any(u.id == self.user.id for u in resolution.users)

    def cmd_RCPT(self, cmd: Rcpt) -> None:
        txn = self.txn
        path = cmd.path
        if cmd.has_params and not self.esmtp:
            raise CommandSyntaxError(R.R555_UNKNOWN_PARAMETER, "parameters after HELO")
        if path.is_utf8 and not txn.params.smtputf8:
            raise UserError(R.R553_UTF8_NEEDS_SMTPUTF8)
        if len(txn.recipients) >= self.cfg.max_recipients:
            raise UserError(R.R452_TOO_MANY_RCPTS)  # RFC 5321 §4.5.3.1.10
        if path.relay_tricks and not self.may_relay:
            raise UserError(R.R554_RELAY_DENIED, f"relay trick {sorted(path.relay_tricks)} in {path.address}")
        address = path.address if path.domain else self._postmaster()
        found = router.route(self.ctx.store, [address], self.ctx.srs, self.ctx.config.server.admin_address)[0]
        if found.kind is Kind.REMOTE and not self.may_relay:
            raise UserError(R.R554_RELAY_DENIED, f"relay to {address} from {self.conn.peer_ip}")
        if found.kind is Kind.UNKNOWN:
            raise UserError(R.R550_NO_SUCH_USER, f"unknown recipient {address}")
        if self._over_quota(found, txn.params.size or 0):
            raise UserError(self._mailbox_full(), f"recipient {address} is over quota")
        txn.recipients.append(Recipient(found, cmd.params.notify, cmd.params.orcpt))
        self.set_state(State.RCPT)
        self.reply(R.R250_RCPT_OK)

    def _mailbox_full(self) -> Reply:
        return R.R552_MAILBOX_FULL if self.cfg.quota_reply == "permanent" else R.R452_MAILBOX_FULL

    def _over_quota(self, found, declared_size: int) -> bool:
        """RFC 3463 4.2.2/5.2.2: every mailbox the address reaches is full (or would be
        with the SIZE the client declared). An alias with room left in one member's
        mailbox, or with outside targets, still takes the message."""
        if found.external or not found.users:
            return False
        return not any(router.has_room(self.ctx.store, user, declared_size) for user in found.users)

    def _postmaster(self) -> str:
        """RFC 5321 §4.1.1.3: <Postmaster> without a domain reaches our postmaster: that of
        the local domain the hostname is in, else of the first local domain."""
        host = self.ctx.hostname.lower()
        domains = sorted(self.ctx.store.list_domains(), key=lambda d: (not (host == d or host.endswith("." + d)), d))
        return f"postmaster@{domains[0] if domains else host}"

    def cmd_DATA(self, cmd) -> None:
        """RFC 5321 §4.1.1.4: 354, content up to <CRLF>.<CRLF>, then one reply."""
        if self.txn.params.body == "BINARYMIME":
            raise UserError(R.R503_BINARYMIME_NEEDS_BDAT)  # RFC 3030 §3
        self.conn.write(format_reply(R.R354_START_DATA))
        self.conn.flush()
        self.conn.timeout = self.timeout(self.cfg.data_timeout)
        try:
            content, outcome = read_data(self.conn, self.ctx.config.limits.message_size)
        finally:
            self.conn.timeout = self.cfg.command_timeout
        if outcome is DataOutcome.NOMINAL:
            content, outcome = check_content(content, self.cfg.bare_newline, stuffed=True, binary=False)
        self.finish_message(content, outcome)

    def cmd_BDAT(self, cmd: Bdat) -> None:
        """RFC 3030: chunks of exactly ``size`` octets; the LAST one completes the message."""
        txn = self.txn
        self.set_state(State.BDAT)
        if len(txn.chunks) + cmd.size > self.ctx.config.limits.message_size:
            self.read_chunk(cmd.size, keep=False)
            # RFC 3030 §2: a failed BDAT ends the transaction; chunks already pipelined
            # after it then meet state READY and are read and refused with 503.
            self.reset_transaction()
            raise UserError(R.message_too_big(self.ctx.config.limits.message_size))
        txn.chunks += self.read_chunk(cmd.size, keep=True)
        if not cmd.last:
            self.reply(R.bdat_chunk_ok(cmd.size))
            return
        content, outcome = check_content(bytes(txn.chunks), self.cfg.bare_newline, stuffed=False,
                                         binary=txn.params.body == "BINARYMIME")
        self.finish_message(content, outcome)

    def read_chunk(self, size: int, *, keep: bool) -> bytes:
        """Exactly ``size`` octets in blocks; kept only if asked (bounded by the caller)."""
        parts = []
        remaining = size
        self.conn.timeout = self.timeout(self.cfg.data_timeout)
        try:
            while remaining:
                block = self.conn.read_some()
                if len(block) > remaining:
                    self.conn.unread(block[remaining:])
                    block = block[:remaining]
                remaining -= len(block)
                if keep:
                    parts.append(block)
        finally:
            self.conn.timeout = self.cfg.command_timeout
        return b"".join(parts)

    def finish_message(self, content: bytes | None, outcome: DataOutcome) -> None:
        """Hand the message to the router; 250 only once it is durable."""
        txn = self.txn
        self.reset_transaction()
        if outcome is DataOutcome.TOO_BIG:
            raise UserError(R.message_too_big(self.ctx.config.limits.message_size), "message refused: too big")
        if outcome is not DataOutcome.NOMINAL:
            raise UserError(OUTCOME_REPLY[outcome], f"message refused: {outcome.value}")
        message_id = secrets.token_hex(8).upper()
        raw = self.trace_header(txn, message_id) + self.submission_headers(content) + content
        envelope = Envelope(
            sender=txn.sender_address,
            recipients=tuple(txn.recipients),
            message_id=message_id,
            body=txn.params.body,
            smtputf8=txn.params.smtputf8,
            ret=txn.params.ret,
            envid=txn.params.envid,
            authenticated_as=self.user.address if self.user else "",
            client_ip=self.conn.peer_ip,
            client_name=self.client_name,
        )
        try:
            # check_content saw every line end in CRLF, except in BINARYMIME octets
            router.accept(self.ctx, envelope, raw, crlf_checked=txn.params.body != "BINARYMIME")
        except Refused as e:  # a filter refused the message: the client gets its reply (e.g. 554 5.7.0)
            raise UserError(R.reply(e.code, e.status, e.text), e.reason) from None
        except StorageFull:
            log.warning("session %s: disk full, %s refused with 452", self.conn.info.id, message_id)
            raise UserError(R.R452_STORAGE_FULL) from None
        except QuotaExceeded:  # every mailbox it was for is full now (decided with the real size)
            raise UserError(self._mailbox_full(), f"{message_id}: every recipient is over quota") from None
        except Exception as e:  # the store or a filter failed: the client may retry
            raise ServerError(R.R451_LOCAL_ERROR, f"accepting {message_id} failed: {e!r}") from e
        self.messages += 1
        self.junk = 0
        # the one line per message for local mail into INBOX too: the MDA logs only what it decided
        log.info("session %s: accepted %s from=<%s> to=%s size=%d", self.conn.info.id, message_id,
                 envelope.sender, ",".join(f"<{r.route.address}>" for r in envelope.recipients), len(raw))
        self.reply(R.queued(message_id))

    def trace_header(self, txn: Transaction, message_id: str) -> bytes:
        """RFC 5321 §4.4 Received header; "with" names TLS and AUTH (RFC 3848, 6531 §4.3)."""
        protocol = ("UTF8SMTP" if txn.params.smtputf8 else "ESMTP") if self.esmtp else "SMTP"
        if self.conn.is_tls:
            protocol += "S"
        if self.user is not None:
            protocol += "A"
        ip = self.conn.peer_ip
        literal = f"IPv6:{ip}" if ":" in ip else ip
        tls = f" ({self.conn.info.tls})" if self.conn.is_tls else ""
        # "for" only with a single recipient: listing more would disclose Bcc recipients
        single = f"\r\n\tfor <{txn.recipients[0].route.address}>" if len(txn.recipients) == 1 else ""
        header = (f"Received: from {self.client_name} ([{literal}])\r\n"
                  f"\tby {self.ctx.hostname} (Kotakpos) with {protocol} id {message_id}{tls}{single};\r\n"
                  f"\t{date_now()}\r\n")
        return header.encode("utf-8", "surrogateescape")

    def submission_headers(self, content: bytes) -> bytes:
        """Message-ID and Date for submitted mail that lacks them (RFC 6409 §8)."""
        if self.user is None:
            return b""
        end = _HEADER_END.search(content)
        header = content[: end.start() + 2] if end else content
        added = b""
        if not _HAS_DATE.search(header):
            added += b"Date: " + date_now().encode() + b"\r\n"
        if not _HAS_MESSAGE_ID.search(header):
            added += f"Message-ID: <{secrets.token_hex(12)}@{self.ctx.hostname}>\r\n".encode()
        return added


SmtpSession._handlers = {verb: getattr(SmtpSession, f"cmd_{verb}") for verb in VERBS}
