"""The POP3 state machine: one `Pop3Session` per connection, owned by one thread.

RFC 1939 §3: AUTHORIZATION until the client proves who it is, TRANSACTION
while it reads and marks mail, UPDATE once it says QUIT. The legal verbs of
each state are written once below; `_dispatch` is the one gate before any
handler runs.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from appliance.auth.sasl import SaslError, decode_plain
from appliance.net.conn import ConnectionClosed, IdleTimeout, LineTooLong
from appliance.pop3 import replies
from appliance.pop3.errors import AuthFailed, CommandSyntaxError, Pop3Error, ServerError, UserError
from appliance.pop3.parse import Command, InvalidCommand, parse_command
from appliance.store.events import MailboxChanged, Overflowed

log = logging.getLogger("kotakpos.pop3")

# RFC 2449 §4 allows command lines of 255 octets; we tolerate more so that a
# long password or a SASL response still fits, and refuse anything longer.
LINE_LIMIT = 2048
# Pipelined RETRs are answered in one write, but not beyond this many bytes.
FLUSH_THRESHOLD = 1 << 20
IMPLEMENTATION = "Kotakpos"
# RETR and TOP read the messages after the one asked for in the same store call (see
# ReadAhead), up to this many messages and bytes beyond the first.
READ_AHEAD_MESSAGES = 32
READ_AHEAD_BYTES = 256 * 1024
SEEN = "\\Seen"


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"


# RFC 1939 §4-6, RFC 2449 §5 (CAPA in every state), RFC 2595 §4 (STLS),
# RFC 5034 §4 (AUTH). UPDATE is entered by QUIT and left by closing.
LEGAL_VERBS: dict[State, frozenset[str]] = {
    State.AUTHORIZATION: frozenset({"USER", "PASS", "AUTH", "STLS", "CAPA", "QUIT"}),
    State.TRANSACTION: frozenset(
        {"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "CAPA", "QUIT"}
    ),
    State.UPDATE: frozenset(),
}


@dataclass(slots=True)  # a login makes one per message: slots make it in half the time and size
class Message:
    """One message of the login snapshot; its number is its index + 1."""

    uid: int  # the message's UID in INBOX, how every store call names it
    size: int  # octets RETR sends before byte-stuffing (RFC 1939 §5)
    unique_id: bytes  # the UIDL value
    seen: bool  # it had \Seen at login: RETR leaves its flags alone
    gone: bool = False  # set when the store no longer has it (another session removed it)


class ReadAhead:
    """Texts of the messages after the one asked for, read together with it.

    Clients read a maildrop in order (fetchmail, every MUA's "get all mail"), and a
    store call per message costs more than the message: each SQLite call gives up the
    GIL and must win it back from the other sessions. So a RETR that finds nothing here
    reads a window of messages in one call. The window doubles while the client goes on
    in order, up to READ_AHEAD_MESSAGES and READ_AHEAD_BYTES, and shrinks to the one
    message asked for when it jumps, so random access reads nothing it does not send.

    A text held here is dropped when the store announces that another session expunged
    its message (``forget``), so that RETR still answers -ERR for it.
    """

    def __init__(self):
        self.texts: dict[int, bytes] = {}  # uid -> stored bytes, not yet sent
        self.window = 1  # messages the last miss read, at most; doubles while the client goes in order
        self.next_number = 1  # the number after the last window: a miss there means "in order"

    def take(self, uid: int) -> bytes | None:
        """The text read ahead for this message, handed out once."""
        return self.texts.pop(uid, None)

    def plan(self, number: int, messages: list[Message], wanted) -> list[int]:
        """The UIDs a miss at ``number`` reads: its own, then those of the next messages
        for which ``wanted(number, message)`` holds (neither marked nor known gone)."""
        self.window = min(self.window * 2, READ_AHEAD_MESSAGES) if number == self.next_number else 1
        uids, budget = [messages[number - 1].uid], READ_AHEAD_BYTES
        last = number
        for n in range(number + 1, len(messages) + 1):
            if len(uids) >= self.window:
                break
            message = messages[n - 1]
            if not wanted(n, message):
                continue
            budget -= message.size
            if budget < 0:
                break
            uids.append(message.uid)
            last = n
        self.next_number = last + 1
        return uids

    def keep(self, texts: dict[int, bytes]) -> None:
        self.texts = texts

    def forget(self, uids) -> None:
        for uid in uids:
            self.texts.pop(uid, None)

    def clear(self) -> None:
        self.texts = {}


@dataclass
class Maildrop:
    """The snapshot taken at login (RFC 1939 §4: numbers stay fixed)."""

    mailbox_id: int  # the user's INBOX
    messages: list[Message]  # in UID order
    changes: object = None  # store Subscription to the user's mailbox events; expunges empty read_ahead
    # True when `changes` may hold events: set by the store's publishing thread (note_news),
    # cleared by the session before it drains them. True at first for anything published
    # before note_news was hooked up.
    news: bool = True
    marked: set[int] = field(default_factory=set)  # numbers marked by DELE; RSET replaces it
    retrieved: set[int] = field(default_factory=set)  # UIDs sent by RETR, unseen at login; get \Seen at the end
    read_ahead: ReadAhead = field(default_factory=ReadAhead)  # texts read with an earlier RETR/TOP

    def note_news(self) -> None:
        self.news = True


class Pop3Session:
    """Serve one POP3 client until it quits, drops or is closed for misbehaving."""

    BUSY_REPLY = replies.ERR_BUSY + b"\r\n"

    def __init__(self, conn, ctx, listener: str):
        # Connection lifetime
        self.conn = conn  # appliance.net Connection; only this thread touches it
        self.ctx = ctx  # ServerContext: config, store, auth, tls
        self.listener = listener  # "pop3" (STLS offered) or "pop3s" (implicit TLS)
        self.config = ctx.config.pop3
        self.state = State.AUTHORIZATION  # advanced by _enter only: a login, QUIT
        self.legal_verbs = LEGAL_VERBS[self.state]  # the gate of _dispatch; set with the state
        self.errors = 0  # counted errors so far; the session ends at config.max_errors
        self.pending_user: str | None = None  # set by USER, consumed by PASS
        self.user = None  # the store's User once logged in
        self.unflushed = 0  # bytes written since the last flush; bounds a pipelined batch
        # Transaction lifetime: set at login, read by every TRANSACTION handler
        self.maildrop: Maildrop | None = None

    # -- the loop -------------------------------------------------------------

    def run(self) -> None:
        # A silent client that has not logged in only holds a connection slot: it gets
        # limits.idle_timeout_unauthenticated (slowloris). RFC 1939 §3's autologout timer
        # of at least 10 minutes applies from login on (see _login).
        self.conn.timeout = self.ctx.config.limits.idle_timeout_unauthenticated
        self.conn.info.state = self.state.value
        self._send(replies.greeting(self.ctx.hostname))
        self._flush()
        try:
            while self.state is not State.UPDATE:
                try:
                    line = self.conn.read_command_line(LINE_LIMIT)
                except LineTooLong:
                    self._fail(CommandSyntaxError(replies.ERR_LINE_TOO_LONG))
                else:
                    self._dispatch(line)
                if self.errors >= self.config.max_errors:
                    self._send(replies.ERR_TOO_MANY_ERRORS)
                    break
                # Pipelining (RFC 2449 §6.6): answer a batch in one write.
                if self.unflushed > FLUSH_THRESHOLD or not self.conn.has_buffered_line():
                    self._flush()
        except IdleTimeout:
            self._send(replies.ERR_IDLE_TIMEOUT)
        except ConnectionClosed:
            if not self.conn.stopping:
                raise
            self._send(replies.ERR_SHUTTING_DOWN)
        finally:
            self._mark_retrieved_seen()
            if self.maildrop is not None:
                self.maildrop.changes.close()
        self._flush()

    def _dispatch(self, line: bytes) -> None:
        command = parse_command(line)
        self.conn.note_command(_redacted(command, line))
        try:
            if isinstance(command, InvalidCommand):
                raise CommandSyntaxError(command.reply)
            if command.verb not in self.legal_verbs:
                raise CommandSyntaxError(replies.ERR_WRONG_STATE)
            self._handlers[command.verb](self, command)
        except Pop3Error as error:
            self._fail(error)
        except (ConnectionClosed, IdleTimeout):  # read inside a handler (the AUTH exchange)
            raise
        except Exception:  # a store or programming failure must not end the server
            log.exception("session %s: pop3 %s failed", self.conn.info.id, command.verb)
            self._fail(ServerError())

    def _enter(self, state: State) -> None:
        self.state = state
        # Kept beside the state, not looked up per command: an Enum member hashes in Python.
        self.legal_verbs = LEGAL_VERBS[state]
        self.conn.info.state = state.value

    def _fail(self, error: Pop3Error) -> None:
        if error.counts_as_error:
            self.errors += 1
        self._send(error.reply)

    # -- writing ----------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self.conn.write(data)
        self.unflushed += len(data)

    def _send(self, line: bytes) -> None:
        self._write(line + b"\r\n")

    def _send_lines(self, lines: list[bytes]) -> None:
        self._write(b"\r\n".join(lines) + b"\r\n")

    def _flush(self) -> None:
        self.conn.flush()
        self.unflushed = 0

    # -- AUTHORIZATION ------------------------------------------------------------

    def cmd_CAPA(self, command: Command) -> None:
        """RFC 2449 §5."""
        authorizing = self.state is State.AUTHORIZATION
        self._send_lines(
            replies.capa(
                stls=authorizing and self._stls_available(),
                login=authorizing and self._login_allowed(),
                implementation=IMPLEMENTATION,
            )
        )

    def cmd_STLS(self, command: Command) -> None:
        """RFC 2595 §4: nothing the client sent before the handshake is used."""
        if self.conn.is_tls:
            raise CommandSyntaxError(replies.ERR_TLS_ACTIVE)
        self._send(replies.OK_STLS)
        self._flush()
        self.conn.start_tls()  # discards whatever the client pipelined after STLS
        self.pending_user = None

    def cmd_USER(self, command: Command) -> None:
        """RFC 1939 §7. Always +OK: whether the name exists is nobody's business."""
        self._require_login_allowed()
        self.pending_user = command.text
        self._send(replies.OK_USER)

    def cmd_PASS(self, command: Command) -> None:
        """RFC 1939 §7."""
        if self.pending_user is None:
            raise CommandSyntaxError(replies.ERR_NEED_USER)
        address, self.pending_user = self.pending_user, None
        self._login(address, command.text)

    def cmd_AUTH(self, command: Command) -> None:
        """RFC 5034 §4, PLAIN only (RFC 4616)."""
        self._require_login_allowed()
        if command.text is None:
            self._send_lines(replies.sasl_mechanisms())
            return
        if command.text != "PLAIN":
            raise CommandSyntaxError(replies.ERR_UNSUPPORTED_MECHANISM)
        response = command.initial
        if response is None:
            response = self._sasl_response()
        if response == "*":  # RFC 5034 §4: the client cancels the exchange
            raise UserError(replies.ERR_AUTH_CANCELLED)
        try:  # (decode_plain reads "=", RFC 5034's empty initial response, as empty)
            authzid, authcid, password = decode_plain(response)
        except SaslError:
            raise CommandSyntaxError(replies.ERR_BAD_SASL) from None
        # We do not let one user act as another (RFC 4616 §2 authzid).
        if authzid and authzid.lower() != authcid.lower():
            raise AuthFailed()
        self._login(authcid, password)

    def _sasl_response(self) -> str:
        """Send the empty challenge and read the client's one-line answer."""
        self._send(replies.AUTH_CONTINUE)
        self._flush()
        try:
            line = self.conn.read_line(LINE_LIMIT)
        except LineTooLong:
            raise CommandSyntaxError(replies.ERR_BAD_SASL) from None
        return line.rstrip(b"\r\n").decode("ascii", "replace").strip()

    def _login(self, address: str, password: str) -> None:
        if self.ctx.auth.blocked(self.conn):
            raise AuthFailed(replies.ERR_AUTH_BLOCKED)
        user = self.ctx.auth.login(address, password, self.conn)
        if user is None:
            raise AuthFailed()
        self.maildrop = self._take_snapshot(user.id)
        self.user = user
        self._enter(State.TRANSACTION)
        self.conn.timeout = self.config.idle_timeout
        self.conn.info.user = user.address
        log.info("session %s: pop3 login %s, %d messages", self.conn.info.id, user.address,
                 len(self.maildrop.messages))
        self._send(replies.OK_LOGGED_IN)

    def _take_snapshot(self, user_id: int) -> Maildrop:
        store = self.ctx.store
        inbox = store.get_mailbox(user_id, "INBOX")
        # Subscribed first, so that no expunge after the listing goes unheard (ReadAhead).
        changes = store.subscribe(user_id)
        try:
            messages = [
                Message(uid, size, replies.unique_id(inbox.uidvalidity, uid), bool(seen))
                for uid, size, seen in store.pop3_maildrop(inbox.id)
            ]
        except BaseException:
            changes.close()
            raise
        maildrop = Maildrop(mailbox_id=inbox.id, messages=messages, changes=changes)
        changes.notify = maildrop.note_news  # so that RETR need not look into an empty queue
        return maildrop

    def _stls_available(self) -> bool:
        return not self.conn.is_tls  # never on pop3s, where TLS came first

    def _login_allowed(self) -> bool:
        # USER/PASS and AUTH only inside TLS, loopback included; the config
        # switch opens plaintext for trusted networks (decided by ctx.auth).
        return self.ctx.auth.plaintext_allowed(self.conn)

    def _require_login_allowed(self) -> None:
        if not self._login_allowed():
            raise AuthFailed(replies.ERR_TLS_REQUIRED)

    # -- TRANSACTION --------------------------------------------------------------

    def cmd_STAT(self, command: Command) -> None:
        """RFC 1939 §5: count and size of the messages not marked deleted."""
        present = [m for _, m in self._undeleted()]
        self._send(replies.stat(len(present), sum(m.size for m in present)))

    def cmd_LIST(self, command: Command) -> None:
        """RFC 1939 §5."""
        if command.number is not None:
            self._send(replies.scan_line(command.number, self._message(command.number).size))
            return
        self._send_lines(replies.scan_listing((n, m.size) for n, m in self._undeleted()))

    def cmd_UIDL(self, command: Command) -> None:
        """RFC 1939 §7."""
        if command.number is not None:
            message = self._message(command.number)
            self._send(replies.uidl_line(command.number, message.unique_id))
            return
        self._send_lines(replies.uidl_listing((n, m.unique_id) for n, m in self._undeleted()))

    def cmd_RETR(self, command: Command) -> None:
        """RFC 1939 §5. The \\Seen flag is set when the session ends, in one write."""
        message = self._message(command.number)
        text = self._text(command.number, message)
        self._write(replies.stuffed(text, replies.retr_line(len(text)) + b"\r\n"))
        if not message.seen:
            self.maildrop.retrieved.add(message.uid)

    def cmd_TOP(self, command: Command) -> None:
        """RFC 1939 §7: header, blank line, and the first n body lines."""
        message = self._message(command.number)
        text = self._text(command.number, message)
        self._write(replies.stuffed(replies.top(text, command.lines), replies.OK_TOP + b"\r\n"))

    def cmd_DELE(self, command: Command) -> None:
        """RFC 1939 §5: mark only; QUIT deletes."""
        message = self._message(command.number)
        if not self.ctx.store.existing_uids(self.maildrop.mailbox_id, [message.uid]):
            message.gone = True
            raise UserError(replies.ERR_MESSAGE_GONE)
        self.maildrop.marked.add(command.number)
        self._send(replies.OK_DELETED)

    def cmd_NOOP(self, command: Command) -> None:
        """RFC 1939 §5."""
        self._send(replies.OK)

    def cmd_RSET(self, command: Command) -> None:
        """RFC 1939 §5: unmark every message."""
        self.maildrop.marked = set()
        present = [m for _, m in self._undeleted()]
        self._send(replies.maildrop(len(present), sum(m.size for m in present)))

    def cmd_QUIT(self, command: Command) -> None:
        """RFC 1939 §6: in TRANSACTION, delete the marked messages, then say goodbye."""
        authorizing = self.state is State.AUTHORIZATION
        self._enter(State.UPDATE)
        if not authorizing:
            self._mark_retrieved_seen()  # before the reply, so IMAP sees it at once
        if authorizing or not self.maildrop.marked:
            self._send(replies.OK_BYE)
            return
        uids = [self.maildrop.messages[n - 1].uid for n in sorted(self.maildrop.marked)]
        try:
            self._remove(uids)
        except Exception:
            log.exception("session %s: pop3 QUIT could not delete %d messages", self.conn.info.id, len(uids))
            self._send(replies.ERR_QUIT_FAILED)
            return
        # Acknowledged only now: the store call returns once committed and fsynced.
        self._send(replies.OK_BYE)

    def _remove(self, uids: list[int]) -> None:
        """One store call, one transaction: erase, or move to Trash if configured."""
        store = self.ctx.store
        mailbox_id = self.maildrop.mailbox_id
        if self.config.deleted_to_trash:
            store.move(mailbox_id, uids, self._trash_id())
        else:
            store.delete_messages(mailbox_id, uids)

    def _trash_id(self) -> int:
        """The user's \\Trash mailbox (RFC 6154), created if the user deleted it."""
        store = self.ctx.store
        for mailbox in store.list_mailboxes(self.user.id):
            if mailbox.special_use == "\\Trash":
                return mailbox.id
        return store.create_mailbox(self.user.id, "Trash", "\\Trash").id

    def _mark_retrieved_seen(self) -> None:
        """RETR sets \\Seen (for IMAP clients), all at once when the session ends."""
        if self.maildrop is None or not self.maildrop.retrieved:
            return
        uids = sorted(self.maildrop.retrieved)
        self.maildrop.retrieved = set()
        try:
            self.ctx.store.store_flags(self.maildrop.mailbox_id, uids, "add", {SEEN})
        except Exception:
            log.exception("session %s: pop3 could not set \\Seen on %d messages", self.conn.info.id, len(uids))

    # -- message lookup -------------------------------------------------------------

    def _undeleted(self):
        """(number, message) for every message neither marked nor known gone."""
        marked = self.maildrop.marked
        for number, message in enumerate(self.maildrop.messages, start=1):
            if number not in marked and not message.gone:
                yield number, message

    def _message(self, number: int) -> Message:
        """The message with this number, or the -ERR the RFC asks for."""
        if not 1 <= number <= len(self.maildrop.messages):
            raise UserError(replies.ERR_NO_SUCH_MESSAGE)
        if number in self.maildrop.marked:
            raise UserError(replies.ERR_MESSAGE_DELETED)
        message = self.maildrop.messages[number - 1]
        if message.gone:
            raise UserError(replies.ERR_MESSAGE_GONE)
        return message

    def _text(self, number: int, message: Message) -> bytes:
        """The canonical text of a message, or -ERR if another session removed it."""
        maildrop = self.maildrop
        ahead = maildrop.read_ahead
        if ahead.texts:
            # a text read ahead is kept from before: hear first of what other workers expunged
            self.ctx.store.catch_up_if_behind()
        if maildrop.news:
            self._hear_expunges()
        raw = ahead.take(message.uid)
        if raw is None:
            marked = maildrop.marked
            uids = ahead.plan(number, maildrop.messages, lambda n, m: n not in marked and not m.gone)
            texts = self.ctx.store.pop3_texts(maildrop.mailbox_id, uids)
            raw = texts.pop(message.uid, None)
            ahead.keep(texts)
        if raw is None:
            message.gone = True
            raise UserError(replies.ERR_MESSAGE_GONE)
        return replies.canonical(raw)

    def _hear_expunges(self) -> None:
        """Drop what was read ahead for messages that other sessions have since removed."""
        self.maildrop.news = False
        for event in self.maildrop.changes.drain():
            if isinstance(event, Overflowed):
                self.maildrop.read_ahead.clear()
            elif (isinstance(event, MailboxChanged) and event.kind == "expunge"
                  and event.mailbox_id == self.maildrop.mailbox_id):
                self.maildrop.read_ahead.forget(event.uids)


Pop3Session._handlers = {
    verb: getattr(Pop3Session, "cmd_" + verb)
    for verbs in LEGAL_VERBS.values()
    for verb in verbs
}


def _redacted(command: Command | InvalidCommand, line: bytes) -> str:
    """The command as the session registry and the log may show it: no secrets."""
    if command.verb == "PASS":
        return "PASS ***"
    # "AUTH" and "AUTH PLAIN" hold nothing secret; an initial response (or a
    # line we could not parse) might.
    if command.verb == "AUTH" and not (isinstance(command, Command) and command.initial is None):
        return "AUTH ***"
    return _printable(line)


def _printable(line: bytes) -> str:
    return line.rstrip(b"\r\n")[:100].decode("ascii", "replace")
