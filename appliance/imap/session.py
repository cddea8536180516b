"""The IMAP session: one state machine per connection (RFC 3501 §3, §6).

The legal verbs of each state are data (``LEGAL``), derived from the command
modules, and checked in one gate (``dispatch``). Each verb has a ``cmd_VERB``
handler. Changes made elsewhere (delivery, other sessions, POP3) reach the
selected mailbox through ``sync``: store events mark the mailbox dirty, and the
store's modseq-ordered change log says exactly what changed.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import logging
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from appliance import mime
from appliance.auth.sasl import SaslError, decode_plain
from appliance.imap import append, esearch, notify, replies
from appliance.imap.push import until_client_speaks
from appliance.imap.commands import any as any_cmds
from appliance.imap.commands import auth as auth_cmds
from appliance.imap.commands import nonauth as nonauth_cmds
from appliance.imap.commands import selected as selected_cmds
from appliance.imap.commands import sorting as sorting_cmds
from appliance.imap.errors import (CommandSyntaxError, CommandTooLong, ImapError, LiteralTooBig, ServerError,
                                   UserError)
from appliance.imap.fetch import FetchAtt
from appliance.imap.matcher import Candidate, Context, matches, needs_headers
from appliance.imap.parse import InvalidCommand, SequenceSet, parse_command
from appliance.imap.reader import CommandReader
from appliance.imap.replies import Atom
from appliance.imap.search import Key, key_names, uses_modseq
from appliance.imap.sort import CAPABILITIES as SORT_CAPS, SortCommands
from appliance.net.conn import ConnectionClosed, IdleTimeout, LineTooLong
from appliance.store import AlreadyExists, InvalidName, NotFound, QuotaExceeded, StorageFull, StoreError
from appliance.store.events import MailboxChanged, Overflowed

log = logging.getLogger("kotakpos.imap")


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"


def _verbs(module) -> frozenset[str]:
    return frozenset(cls.VERB for cls in module.COMMANDS)


# RFC 3501 §3 and §6: which commands each state accepts. ENABLE is for the
# authenticated state only (RFC 5161 §3.1).
LEGAL: dict[State, frozenset[str]] = {
    State.NOT_AUTHENTICATED: _verbs(any_cmds) | _verbs(nonauth_cmds),
    State.AUTHENTICATED: _verbs(any_cmds) | _verbs(auth_cmds),
    State.SELECTED: _verbs(any_cmds) | (_verbs(auth_cmds) - {"ENABLE"}) | _verbs(selected_cmds)
    | _verbs(sorting_cmds),
}

LINE_LIMIT = 65536  # one line of a command before login
AUTHED_LINE_LIMIT = 256 << 10  # after login: UID sets of big mailboxes (mbsync) make long lines
COMMAND_LIMIT = 1 << 20  # all lines of one command, literals excluded
PRELOGIN_LITERAL_LIMIT = 4096  # before login only LOGIN needs a literal
MAX_UID = 2**32 - 1
FLUSH_EVERY = 500  # FETCH responses (without bodies) buffered before a flush
RAW_BATCH_BYTES = 4 << 20  # message bytes read from the store at once for a FETCH of bodies
ROWS_BY_UID_LIMIT = 1000  # up to this many messages are read by UID, more by scanning the mailbox
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
# RFC 3501 §7.4.1: no EXPUNGE while answering these (their UID forms are fine); SORT and
# THREAD answer with sequence numbers as SEARCH does (RFC 5256)
NO_EXPUNGE_DURING = frozenset({"FETCH", "STORE", "SEARCH", "SORT", "THREAD"})

BASE_CAPS = ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE")
AUTHED_CAPS = BASE_CAPS + (
    "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS",
    "SPECIAL-USE", "ESEARCH", "QUOTA", "QUOTA=RES-STORAGE", "CONDSTORE", "QRESYNC", "BINARY",
    "STATUS=SIZE", "UTF8=ACCEPT", "MULTIAPPEND", "CATENATE", "SEARCHRES", "PARTIAL", "NOTIFY",
) + SORT_CAPS
ENABLEABLE = frozenset({"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4rev2"})
_ENABLEABLE_BY_UPPER = {name.upper(): name for name in ENABLEABLE}


class MailboxGone(Exception):
    """The selected mailbox was deleted by another session: we say BYE (as Dovecot does)."""


@dataclass
class Selection:
    """The selected mailbox as this client knows it; replaced as a whole by SELECT."""

    mailbox_id: int  # set by SELECT; every selected command reads it
    name: str  # for logs
    uidvalidity: int
    read_only: bool  # EXAMINE: nothing may change flags or expunge
    uids: list[int]  # sequence number n is uids[n-1], exactly as the client was told
    flags: dict[int, frozenset[str]]  # last flags the client was told, by UID
    recent: set[int]  # UIDs that are \Recent for this session
    modseq: int  # every change up to this modseq has been looked at by sync
    keywords: set[str] = field(default_factory=set)  # keywords announced in * FLAGS; grown by _announce_keywords
    gone: set[int] = field(default_factory=set)  # expunged in the store, not yet told
    saved: list[int] = field(default_factory=list)  # "$": UIDs saved by SEARCH RETURN (SAVE), RFC 5182; set by SEARCH
    contexts: dict = field(default_factory=dict)  # RFC 5267 updating searches by tag; kept by sort.py
    _seq: dict[int, int] | None = None  # UID -> sequence number, rebuilt after changes

    def seq_of(self, uid: int) -> int:
        if self._seq is None:
            self._seq = {u: i + 1 for i, u in enumerate(self.uids)}
        return self._seq[uid]

    def renumbered(self) -> None:
        self._seq = None


class ImapSession(SortCommands):
    BUSY_REPLY = replies.BYE_TOO_BUSY

    def __init__(self, conn, ctx, listener: str) -> None:
        # connection lifetime
        self.conn = conn
        self.ctx = ctx
        self.store = ctx.store
        self.listener = listener  # "imap" (STARTTLS offered) or "imaps"
        self.state = State.NOT_AUTHENTICATED
        self.user = None  # store User, set by LOGIN/AUTHENTICATE
        self.events = None  # store Subscription for this user's mailboxes, opened at login
        self._infos: dict = {}  # blob id -> MIME tree, for the batch of messages a FETCH cuts sections from
        self.enabled: set[str] = set()  # ENABLEd extensions (CONDSTORE, QRESYNC, UTF8=ACCEPT)
        self.condstore = False  # CONDSTORE in use: FETCH responses carry MODSEQ
        self.errors = 0  # bad commands in a row
        self.reader = CommandReader(conn, LINE_LIMIT, COMMAND_LIMIT)
        # mailbox lifetime: replaced by SELECT/EXAMINE, dropped by CLOSE/UNSELECT
        self._selected: Selection | None = None  # see the selected property
        self.verb = ""  # the verb being answered (decides whether EXPUNGE may be sent)
        self.notify: notify.Notifier | None = None  # set by NOTIFY SET (RFC 5465); read by step and sync
        self._held_news = False  # the selected mailbox changed while a NOTIFY client waited; sync reads it

    @property
    def selected(self) -> Selection | None:
        """The selected mailbox as the client knows it; set by SELECT, None in other states."""
        return self._selected

    @selected.setter
    def selected(self, sel: Selection | None) -> None:
        # RFC 2180 §4.1: while a mailbox is selected, messages other sessions expunge stay
        # there for this one until it is told (store.release_expunged)
        left, self._selected = self._selected, sel
        if sel is not None:
            self.store.told_expunges(self.conn.info.id, sel.mailbox_id, sel.modseq)
        elif left is not None:
            self.store.left_mailbox(self.conn.info.id, left.mailbox_id)

    # -- main loop -------------------------------------------------------------------

    def run(self) -> None:
        self.conn.timeout = self.ctx.config.limits.idle_timeout_unauthenticated
        self._set_state(State.NOT_AUTHENTICATED)
        self.send(replies.ok(None, f"{self.ctx.hostname} Kotakpos IMAP ready", self._capability_code()))
        self.conn.flush()
        try:
            while self.step():
                if not self.conn.has_buffered_line():
                    self.conn.flush()
        except IdleTimeout:
            self.send(replies.BYE_TIMEOUT)
        except ConnectionClosed:
            if self.conn.stopping:
                self.send(replies.BYE_SHUTDOWN)  # RFC 3501 §7.1.5; flushed below if the socket lives
            raise
        finally:
            self.selected = None
            if self.events is not None:
                self.events.close()
            try:
                self.conn.flush()
            except ConnectionClosed:
                pass

    def step(self) -> bool:
        """Read and answer one command; False once the session must end."""
        if self.notify is not None and not self.conn.has_buffered_line():
            # RFC 5465: news reaches a NOTIFY client while it is silent, as under IDLE
            try:
                until_client_speaks(self, self._tell_notified)
            except MailboxGone:
                self.send(replies.bye("Selected mailbox was deleted"))
                return False
        try:
            data = self.reader.read(self._literal_limit())
        except CommandTooLong as exc:
            if exc.tag is None:
                # no tag to answer with: a client waiting for one would wait for ever
                self.send(replies.BYE_LINE_TOO_LONG)
                return False
            self.send(replies.bad(exc.tag, "Command too long"))
            return self._count_error()
        except LiteralTooBig as exc:
            if exc.synchronising and exc.tag is not None:
                # RFC 7888 §4: refusing before "+" means the client will not send it
                self.send(replies.no(exc.tag, "Literal too big", "TOOBIG"))
                return self._count_error()
            self.send(replies.bad(exc.tag, "Literal too big", "TOOBIG"))
            self.send(replies.BYE_LITERAL_TOO_BIG)
            return False
        command = parse_command(data, utf8_names=self.utf8)
        self._note(command, data)
        return self.dispatch(command)

    def dispatch(self, command) -> bool:
        """The one gate: wrong state is NO, unknown or malformed is BAD."""
        tag = command.tag
        verb = command.verb
        if verb in self._handlers and verb not in LEGAL[self.state]:
            self.send(replies.no(tag, f"{verb} is not allowed in the {self.state.value} state"))
            return True
        if isinstance(command, InvalidCommand) and command.refused:
            self.send(replies.no(tag, command.reason))
            return True
        if isinstance(command, InvalidCommand):
            self.send(replies.bad(tag, "Unknown command" if command.unknown else f"Syntax error: {command.reason}"))
            return self._count_error()
        self.errors = 0
        self.verb = verb
        handler = self._handlers[verb]
        try:
            if self.state is not State.NOT_AUTHENTICATED:
                # what any worker acknowledged before this command came is in its answer
                self.store.catch_up_if_behind()
            result = handler(self, command)
        except ImapError as exc:
            self._sync_quietly()
            self.send(replies.response(tag, exc.status, exc.text, exc.code))
            return True
        except StoreError as exc:
            # a store refusal (a mailbox vanished meanwhile, quota, a full disk) carries
            # user-fit text; RFC 5530 §3: UNAVAILABLE is a temporary failure of a subsystem
            self._sync_quietly()
            code = {QuotaExceeded: "OVERQUOTA", NotFound: "NONEXISTENT", AlreadyExists: "ALREADYEXISTS",
                    InvalidName: "CANNOT", StorageFull: "UNAVAILABLE"}.get(type(exc))
            self.send(replies.no(tag, str(exc), code))
            return True
        except MailboxGone:
            self.send(replies.bye("Selected mailbox was deleted"))
            return False
        except LineTooLong:
            # a handler's own read (SASL response, IDLE's DONE) was too long
            self.send(replies.bad(tag, "Line too long"))
            return self._count_error()
        except (ConnectionClosed, IdleTimeout):
            raise
        except Exception:
            log.exception("imap %s failed user=%s", verb, self.user.address if self.user else "-")
            error = ServerError()
            self.send(replies.response(tag, error.status, error.text, error.code))
            return True
        return result is not False

    def _count_error(self) -> bool:
        self.errors += 1
        if self.errors >= self.ctx.config.imap.max_errors:
            self.send(replies.BYE_TOO_MANY_ERRORS)
            return False
        return True

    def _literal_limit(self) -> int:
        if self.state is State.NOT_AUTHENTICATED:
            return PRELOGIN_LITERAL_LIMIT
        return self.ctx.config.limits.message_size

    def _note(self, command, data: bytes) -> None:
        """Record the command for live views, never with a password in it."""
        verb = command.verb or "?"
        if verb in ("LOGIN", "AUTHENTICATE"):
            text = verb
        else:
            text = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
            text = text.split(" ", 1)[1] if " " in text else text
        self.conn.note_command(text)
        log.debug("imap < %s %s", self.conn.peer_ip, text[:200])  # transcript, secrets already removed

    def send(self, data: bytes) -> None:
        self.conn.write(data)

    def ok(self, command, text: str, code: str | None = None) -> None:
        """The tagged OK, preceded by whatever changes the client may now be told."""
        self.sync(self.verb not in NO_EXPUNGE_DURING)
        self.send(replies.ok(command.tag, text, code))

    def _set_state(self, state: State) -> None:
        self.state = state
        self.conn.info.state = state.value

    @property
    def rev2(self) -> bool:
        """The client ENABLEd IMAP4rev2 (RFC 9051 §6.3.1): rev2 replies from now on."""
        return "IMAP4rev2" in self.enabled

    @property
    def utf8(self) -> bool:
        """Mailbox names travel as UTF-8: the client ENABLEd UTF8=ACCEPT (RFC 9755) or IMAP4rev2 (RFC 9051 §5.1)."""
        return "UTF8=ACCEPT" in self.enabled or self.rev2

    # -- capabilities ----------------------------------------------------------------

    def _capabilities(self) -> tuple[str, ...]:
        if self.state is not State.NOT_AUTHENTICATED:
            return AUTHED_CAPS
        caps = BASE_CAPS
        if not self.conn.is_tls and self.listener == "imap":
            caps += ("STARTTLS",)
        if self.ctx.auth.plaintext_allowed(self.conn):
            caps += ("AUTH=PLAIN",)
        else:
            caps += ("LOGINDISABLED",)
        return caps

    def _capability_code(self) -> str:
        return "CAPABILITY " + " ".join(self._capabilities())

    # -- any state (RFC 3501 §6.1) ---------------------------------------------------

    def cmd_CAPABILITY(self, cmd) -> None:
        self.send(b"* CAPABILITY " + " ".join(self._capabilities()).encode("ascii") + b"\r\n")
        self.ok(cmd, "CAPABILITY completed")

    def cmd_NOOP(self, cmd) -> None:
        self.ok(cmd, "NOOP completed")

    def cmd_LOGOUT(self, cmd) -> bool:
        self.send(replies.BYE_LOGOUT)
        self.send(replies.ok(cmd.tag, "LOGOUT completed"))
        return False

    def cmd_ID(self, cmd) -> None:
        # RFC 2971: what the client says about itself goes to the log only
        if cmd.params:
            log.info("imap id peer=%s %s", self.conn.peer_ip,
                     " ".join(f"{k}={v}" for k, v in cmd.params[:10]))
        self.send(replies.data(Atom(b"ID"), ["name", "Kotakpos"]))
        self.ok(cmd, "ID completed")

    # -- not authenticated (RFC 3501 §6.2) -------------------------------------------

    def cmd_STARTTLS(self, cmd) -> None:
        if self.conn.is_tls or self.listener != "imap":
            raise CommandSyntaxError("Already using TLS")
        self.send(replies.ok(cmd.tag, "Begin TLS negotiation now"))
        # start_tls flushes, then drops every byte the client pipelined after STARTTLS
        self.conn.start_tls()

    def _require_plaintext_allowed(self) -> None:
        if not self.ctx.auth.plaintext_allowed(self.conn):
            raise UserError("Use STARTTLS first: passwords are only accepted over TLS", "PRIVACYREQUIRED")

    def cmd_LOGIN(self, cmd) -> None:
        self._require_plaintext_allowed()
        self._log_in(cmd, cmd.user.decode("utf-8", "replace"), cmd.password.decode("utf-8", "replace"))

    def cmd_AUTHENTICATE(self, cmd) -> None:
        if cmd.mechanism != "PLAIN":
            raise UserError("Only AUTHENTICATE PLAIN is supported", "CANNOT")
        self._require_plaintext_allowed()
        response = cmd.initial
        if response is None:
            # RFC 3501 §6.2.2: an empty challenge, then one line of base64 (or "*" to cancel)
            self.send(replies.CONTINUE_SASL)
            self.conn.flush()
            response = self.conn.read_line(LINE_LIMIT).rstrip(b"\r\n")
            if response == b"*":
                raise CommandSyntaxError("Authentication cancelled")
        if response == b"=":
            response = b""
        try:
            authzid, authcid, password = decode_plain(response)
        except SaslError as exc:
            raise CommandSyntaxError("Invalid SASL PLAIN response") from exc
        if authzid and authzid.lower() != authcid.lower():
            raise UserError("Acting as another user is not allowed", "AUTHORIZATIONFAILED")
        self._log_in(cmd, authcid, password)

    def _log_in(self, cmd, address: str, password: str) -> None:
        if self.ctx.auth.blocked(self.conn):
            raise UserError("Too many failed logins, try again later", "UNAVAILABLE")
        user = self.ctx.auth.login(address, password, self.conn)
        if user is None:
            raise UserError("Invalid credentials", "AUTHENTICATIONFAILED")
        self.user = user
        self.conn.info.user = user.address
        self.conn.timeout = self.ctx.config.imap.idle_timeout
        self.events = self.store.subscribe(user.id)
        self.reader.line_limit = AUTHED_LINE_LIMIT
        self._set_state(State.AUTHENTICATED)
        self.send(replies.ok(cmd.tag, "Logged in", self._capability_code()))

    # -- authenticated: mailboxes (RFC 3501 §6.3) -----------------------------------

    def _mailbox(self, name: str):
        """The user's own mailbox called ``name``, or NO [NONEXISTENT]."""
        mailbox = self.store.get_mailbox(self.user.id, name)
        if mailbox is None:
            raise UserError(f"No mailbox {name}", "NONEXISTENT")
        return mailbox

    def cmd_SELECT(self, cmd) -> None:
        if self.selected is not None:
            # RFC 7162 §3.2.11: a client using QRESYNC is told where the old mailbox ends
            self.selected = None
            self._set_state(State.AUTHENTICATED)
            if "QRESYNC" in self.enabled or self.rev2:
                # RFC 9051 §6.3.2 asks the same of IMAP4rev2
                self.send(replies.ok(None, "Previous mailbox closed", "CLOSED"))
        if cmd.qresync is not None and "QRESYNC" not in self.enabled:
            raise CommandSyntaxError("QRESYNC must be enabled first")
        mailbox = self._mailbox(cmd.mailbox)
        if cmd.condstore or cmd.qresync is not None:
            self.condstore = True
        self._drain_events()
        # from before its snapshot, so that what is expunged once the snapshot is read is
        # kept for this session (RFC 2180 §4.1); the Selection then says what it was told
        self.store.told_expunges(self.conn.info.id, mailbox.id, 0)
        # everything the client is told below comes from one moment's snapshot, so that
        # the modseq it starts from agrees with the messages it is shown
        snapshot = self.store.mailbox_snapshot(mailbox.id)
        if snapshot is None:
            self.store.left_mailbox(self.conn.info.id, mailbox.id)
            raise UserError(f"No mailbox {cmd.mailbox}", "NONEXISTENT")
        uids = snapshot.uids
        status_modseq = snapshot.highest_modseq
        if not uids:
            recent = set()
        elif cmd.READ_ONLY:
            # RFC 3501 §6.3.2: EXAMINE answers as SELECT would, but takes no \Recent away
            recent = self.store.recent_uids(mailbox.id, 1, uids[-1])
        else:
            recent = self.store.claim_recent_upto(mailbox.id, uids[-1])
        sel = Selection(mailbox.id, mailbox.name, mailbox.uidvalidity, cmd.READ_ONLY,
                        uids, snapshot.flags, recent, status_modseq)
        self._announce_keywords(sel, set(snapshot.flags.values()), always=True)
        if self.rev2:
            # RFC 9051 §6.3.2: a LIST reply with the name, no RECENT and no UNSEEN code
            self.send(b"* %d EXISTS\r\n" % len(uids))
            self.send(b'* LIST () "/" ' + replies.mailbox_name(mailbox.name, True) + b"\r\n")
        else:
            self.send(b"* %d EXISTS\r\n* %d RECENT\r\n" % (len(uids), len(recent)))
            unseen = next((n for n, flags in enumerate(snapshot.flags.values(), 1) if "\\Seen" not in flags), None)
            if unseen is not None:
                self.send(replies.ok(None, "First unseen", f"UNSEEN {unseen}"))
        self.send(replies.ok(None, "UIDs valid", f"UIDVALIDITY {mailbox.uidvalidity}"))
        self.send(replies.ok(None, "Predicted next UID", f"UIDNEXT {snapshot.uidnext}"))
        self.send(replies.ok(None, "Highest", f"HIGHESTMODSEQ {status_modseq}"))
        self.selected = sel
        self._set_state(State.SELECTED)
        if cmd.qresync is not None and cmd.qresync.uidvalidity == mailbox.uidvalidity:
            self._qresync(cmd.qresync)
        self.ok(cmd, "EXAMINE completed" if cmd.READ_ONLY else "SELECT completed",
                "READ-ONLY" if cmd.READ_ONLY else "READ-WRITE")

    cmd_EXAMINE = cmd_SELECT

    def _announce_keywords(self, sel: Selection, flag_sets, always: bool = False) -> None:
        """Send FLAGS and PERMANENTFLAGS when keywords appear that the client was not told of.

        RFC 3501 §7.2.6: the FLAGS response lists the flags in use in the mailbox.
        """
        new = {f for flags in flag_sets for f in flags if not f.startswith("\\")} - sel.keywords
        if not (new or always):
            return
        sel.keywords |= new
        flags = list(SYSTEM_FLAGS) + sorted(sel.keywords)
        self.send(b"* FLAGS " + replies.flags(flags) + b"\r\n")
        permanent = Atom(b"()") if sel.read_only else replies.flags(flags + ["\\*"])
        self.send(replies.ok(None, "Flags permitted", "PERMANENTFLAGS " + permanent.decode()))

    def _qresync(self, params) -> None:
        """RFC 7162 §3.2.5.2: tell what vanished and what changed since the client's modseq."""
        sel = self.selected
        changes = self._changes_since(params.modseq)
        vanished = changes.vanished
        if params.known_uids is not None:
            vanished = [u for u in vanished if params.known_uids.contains(u, MAX_UID)]
        if vanished:
            self.send(b"* VANISHED (EARLIER) " + replies.sequence_set(vanished) + b"\r\n")
        for row in changes.changed:
            if row.uid in sel.flags:  # not one that arrived after the snapshot: sync tells of those
                self.send(self._fetch_flags_line(sel.seq_of(row.uid), row.uid, row.flags, row.modseq))

    def _changes_since(self, modseq: int):
        """What changed in the selected mailbox after ``modseq`` (the store's MailboxChanges)."""
        changes = self.store.mailbox_changes(self.selected.mailbox_id, modseq)
        if changes is None:
            raise MailboxGone()
        return changes

    def cmd_CREATE(self, cmd) -> None:
        name = self._new_name(cmd.mailbox)
        self.store.create_mailbox(self.user.id, name)
        self.ok(cmd, "CREATE completed")

    def _new_name(self, name: str) -> str:
        """A name the user may create: inside their own tree, no namespace prefixes or wildcards.

        A trailing "/" only says the client plans children (RFC 3501 §6.3.3).
        """
        name = name.rstrip("/") if name.endswith("/") and name != "/" else name
        if name.startswith(("#", "~", "/")) or "*" in name or "%" in name:
            raise UserError("Mailbox names may not start with #, ~ or / nor contain * or %", "CANNOT")
        if any(level in (".", "..") for level in name.split("/")):
            raise UserError("Mailbox name levels may not be . or ..", "CANNOT")
        if name == "INBOX":
            raise UserError("INBOX already exists", "ALREADYEXISTS")
        return name

    def cmd_DELETE(self, cmd) -> None:
        if cmd.mailbox == "INBOX":
            raise UserError("INBOX cannot be deleted", "CANNOT")
        mailbox = self._mailbox(cmd.mailbox)
        if self.selected is not None and self.selected.mailbox_id == mailbox.id:
            self.selected = None
            self._set_state(State.AUTHENTICATED)
        prefix = mailbox.name + "/"
        if any(m.name.startswith(prefix) for m in self.store.list_mailboxes(self.user.id)):
            # RFC 3501 §6.3.4: we do not keep \Noselect parents, so a parent stays while it has children
            raise UserError("Mailbox has children; delete them first", "HASCHILDREN")  # RFC 9051 §7.1
        self.store.delete_mailbox(self.user.id, mailbox.name)
        self.ok(cmd, "DELETE completed")

    def cmd_RENAME(self, cmd) -> None:
        source = self._mailbox(cmd.old)
        target = self._new_name(cmd.new)
        self.store.rename_mailbox(self.user.id, source.name, target)
        self.ok(cmd, "RENAME completed")

    def cmd_SUBSCRIBE(self, cmd) -> None:
        self._mailbox(cmd.mailbox)
        self.store.set_subscribed(self.user.id, cmd.mailbox, True)
        self.ok(cmd, "SUBSCRIBE completed")

    def cmd_UNSUBSCRIBE(self, cmd) -> None:
        self.store.set_subscribed(self.user.id, cmd.mailbox, False)
        self.ok(cmd, "UNSUBSCRIBE completed")

    def cmd_LIST(self, cmd) -> None:
        self._check_status_items(cmd.status_items)
        if not cmd.extended and cmd.patterns == ("",):
            # RFC 3501 §6.3.8: an empty pattern asks for the delimiter and root
            self.send(b'* LIST (\\Noselect) "/" ""\r\n')
            self.ok(cmd, "LIST completed")
            return
        mailboxes = {m.name: m for m in self.store.list_mailboxes(self.user.id)}
        subscribed = self.store.subscriptions(self.user.id)
        patterns = [ListPattern(cmd.reference, p) for p in cmd.patterns]
        want_subscribed = "SUBSCRIBED" in cmd.selection
        show_subscribed = want_subscribed or "SUBSCRIBED" in cmd.returns
        only_special = "SPECIAL-USE" in cmd.selection
        recursive = "RECURSIVEMATCH" in cmd.selection
        names = set(mailboxes) | (subscribed if want_subscribed else set())

        def selected_by_options(name: str) -> bool:
            if want_subscribed and name not in subscribed:
                return False
            if only_special and not (name in mailboxes and mailboxes[name].special_use):
                return False
            return True

        def pattern_matches(name: str) -> bool:
            return any(p.fullmatch(name) for p in patterns)

        for name in sorted(names, key=lambda n: (n != "INBOX", n)):
            if not pattern_matches(name):
                continue
            # RFC 5258 §3.5: RECURSIVEMATCH also lists parents of children that meet the
            # selection options; §4: CHILDINFO only for a child not listed itself
            prefix = name + "/"
            childinfo = recursive and any(n.startswith(prefix) and selected_by_options(n) and not pattern_matches(n)
                                          for n in names)
            if not (selected_by_options(name) or childinfo):
                continue
            attrs = []
            mailbox = mailboxes.get(name)
            if mailbox is None:
                attrs.append("\\NonExistent")
            else:
                prefix = name + "/"
                attrs.append("\\HasChildren" if any(n.startswith(prefix) for n in mailboxes) else "\\HasNoChildren")
                if mailbox.special_use:
                    attrs.append(mailbox.special_use)
            if show_subscribed and name in subscribed:
                attrs.append("\\Subscribed")
            line = b"* LIST " + replies.flags(attrs) + b' "/" ' + replies.mailbox_name(name, self.utf8)
            if childinfo:
                line += b' ("CHILDINFO" ("SUBSCRIBED"))' if want_subscribed else b""
            self.send(line + b"\r\n")
            if "STATUS" in cmd.returns and mailbox is not None:
                self._send_status(mailbox, cmd.status_items)
        self.ok(cmd, "LIST completed")

    def cmd_LSUB(self, cmd) -> None:
        subscribed = self.store.subscriptions(self.user.id)
        existing = {m.name for m in self.store.list_mailboxes(self.user.id)}
        pattern = ListPattern(cmd.reference, cmd.pattern)
        listed = {}  # name -> selectable
        for name in subscribed:
            if pattern.fullmatch(name):
                listed[name] = name in existing
                continue
            # RFC 3501 §6.3.9: with "%", a parent that is not subscribed itself is listed
            # \Noselect for its subscribed children
            levels = name.split("/")
            for depth in range(len(levels) - 1, 0, -1):
                parent = "/".join(levels[:depth])
                if pattern.fullmatch(parent):
                    if parent not in subscribed:
                        listed[parent] = False
                    break
        for name in sorted(listed):
            attrs = Atom(b"()") if listed[name] else Atom(b"(\\Noselect)")
            self.send(b"* LSUB " + attrs + b' "/" ' + replies.mailbox_name(name, self.utf8) + b"\r\n")
        self.ok(cmd, "LSUB completed")

    def _check_status_items(self, items) -> None:
        if self.rev2 and "RECENT" in items:
            raise CommandSyntaxError("RECENT is not an IMAP4rev2 status item")  # RFC 9051 §9 status-att

    def _send_status(self, mailbox, items) -> None:
        status = self.store.mailbox_status(mailbox.id)
        values = {"MESSAGES": status.messages, "RECENT": status.recent, "UIDNEXT": status.uidnext,
                  "UIDVALIDITY": status.uidvalidity, "UNSEEN": status.unseen,
                  "HIGHESTMODSEQ": status.highestmodseq, "SIZE": status.size, "DELETED": status.deleted}
        pairs = []
        for item in items:
            pairs += [Atom(item.encode("ascii")), values[item]]
        self.send(replies.data(Atom(b"STATUS"), Atom(replies.mailbox_name(mailbox.name, self.utf8)), pairs))

    def cmd_STATUS(self, cmd) -> None:
        self._check_status_items(cmd.items)
        mailbox = self._mailbox(cmd.mailbox)
        if "HIGHESTMODSEQ" in cmd.items:
            self._use_condstore()  # RFC 7162 §3.1: asking for it enables CONDSTORE
        self._send_status(mailbox, cmd.items)
        self.ok(cmd, "STATUS completed")

    def cmd_APPEND(self, cmd) -> None:
        append.append(self, cmd)

    def cmd_NAMESPACE(self, cmd) -> None:
        # RFC 2342: one personal namespace, no prefix, "/" as delimiter; no others
        self.send(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
        self.ok(cmd, "NAMESPACE completed")

    def cmd_ENABLE(self, cmd) -> None:
        newly = []
        for word in cmd.capabilities:
            name = _ENABLEABLE_BY_UPPER.get(word, word)  # the parser upper-cases; IMAP4rev2 is spelt so
            if name in ENABLEABLE and name not in self.enabled:
                self.enabled.add(name)
                newly.append(name)
        if "QRESYNC" in self.enabled and "CONDSTORE" not in self.enabled:
            self.enabled.add("CONDSTORE")  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
        self.condstore = self.condstore or "CONDSTORE" in self.enabled
        self.send(b"* ENABLED" + b"".join(b" " + n.encode("ascii") for n in newly) + b"\r\n")
        self.ok(cmd, "ENABLE completed")

    def _quota_line(self) -> bytes | None:
        user = self.store.get_user_by_id(self.user.id)
        if not user or not user.quota:
            return None
        used = self.store.usage(self.user.id)
        # RFC 9208 §5.1: STORAGE is counted in units of 1024 octets
        return b'* QUOTA "" (STORAGE %d %d)\r\n' % ((used + 1023) // 1024, user.quota // 1024)

    def cmd_GETQUOTAROOT(self, cmd) -> None:
        self._mailbox(cmd.mailbox)
        line = self._quota_line()
        name = replies.mailbox_name(cmd.mailbox, self.utf8)
        self.send(b"* QUOTAROOT " + name + (b' ""' if line else b"") + b"\r\n")
        if line:
            self.send(line)
        self.ok(cmd, "GETQUOTAROOT completed")

    def cmd_GETQUOTA(self, cmd) -> None:
        line = self._quota_line()
        if cmd.root != "" or line is None:
            raise UserError("No such quota root", "NONEXISTENT")
        self.send(line)
        self.ok(cmd, "GETQUOTA completed")

    def cmd_IDLE(self, cmd) -> None:
        """RFC 2177: push changes until the client says DONE.

        While the client idles, its news is usually written by the pusher's thread
        (appliance.imap.push) and this thread sleeps on; it wakes when the client
        speaks or when the pusher hands the news over.
        """
        until_client_speaks(self, lambda: self.sync(True, push=True), lambda: self.send(replies.CONTINUE_IDLE))
        line = self.conn.read_line(LINE_LIMIT)
        if line.rstrip(b"\r\n").upper() != b"DONE":
            raise CommandSyntaxError("Expected DONE")
        self.ok(cmd, "IDLE terminated")

    def cmd_NOTIFY(self, cmd) -> None:
        notify.notify(self, cmd)

    def _wait(self, waker) -> bool:
        """Block until the client sends something (True) or the pusher wakes us (False).

        A stopping server ends the wait with ConnectionClosed, and ``run`` says BYE.
        """
        return self.conn.wait_for_client(waker.fd)

    # -- selected state (RFC 3501 §6.4) ----------------------------------------------

    def cmd_CHECK(self, cmd) -> None:
        self.ok(cmd, "CHECK completed")  # every write is already durable

    def cmd_CLOSE(self, cmd) -> None:
        sel = self.selected
        if not sel.read_only:
            # RFC 3501 §6.4.2: expunge silently, no EXPUNGE responses
            self.store.expunge(sel.mailbox_id, session_id=self.conn.info.id)
        self.selected = None
        self._set_state(State.AUTHENTICATED)
        self.send(replies.ok(cmd.tag, "CLOSE completed"))

    def cmd_UNSELECT(self, cmd) -> None:
        self.selected = None
        self._set_state(State.AUTHENTICATED)
        self.send(replies.ok(cmd.tag, "UNSELECT completed"))

    def _writable(self) -> Selection:
        if self.selected.read_only:
            raise UserError("Mailbox is read-only", "READ-ONLY")
        return self.selected

    def cmd_EXPUNGE(self, cmd) -> None:
        self.store.expunge(self._writable().mailbox_id, session_id=self.conn.info.id)
        self.ok(cmd, "EXPUNGE completed")

    def cmd_UID_EXPUNGE(self, cmd) -> None:
        sel = self._writable()
        self.store.expunge(sel.mailbox_id, self._resolve(cmd.uids, uid=True), self.conn.info.id)
        self.ok(cmd, "UID EXPUNGE completed")

    def _use_condstore(self) -> None:
        """A CONDSTORE-enabling command (RFC 7162 §3.1): the first one tells where the mailbox stands."""
        if not self.condstore and self.selected is not None:
            self.send(replies.ok(None, "Highest", f"HIGHESTMODSEQ {self.selected.modseq}"))
        self.condstore = True

    def _resolve(self, messages: SequenceSet, uid: bool, with_gone: bool = False) -> list[int]:
        """The UIDs a sequence set names, in ascending order.

        Sequence numbers beyond the mailbox are an error (RFC 9051 §6.4.4 asks for BAD);
        UIDs that do not exist are simply not there (RFC 3501 §6.4.8). Those expunged but
        not yet told are left out, unless ``with_gone``.
        """
        sel = self.selected
        if messages.saved:
            # RFC 5182 §2.1: "$" is the saved UIDs, less those expunged since, in UID and sequence commands alike
            live = set(sel.uids) - sel.gone
            return [u for u in sel.saved if u in live]
        if uid:
            known = sel.uids  # ascending, so each range is one slice of it
            largest = known[-1] if known else 0
            slices = [known[bisect_left(known, lo):bisect_right(known, hi)] for lo, hi in messages.resolve(largest)]
            out = slices[0] if len(slices) == 1 else sorted(set().union(*slices))
        else:
            count = len(sel.uids)
            ranges = messages.resolve(count)
            if any(lo < 1 or hi > count for lo, hi in ranges):
                raise CommandSyntaxError("Invalid message sequence number")
            picked = set()
            for lo, hi in ranges:
                picked.update(range(lo, hi + 1))
            out = [sel.uids[n - 1] for n in sorted(picked)]
        return [u for u in out if u not in sel.gone] if sel.gone and not with_gone else out

    def _rows(self, uids) -> list:
        """Store rows for these UIDs of the selected mailbox: by UID for a few, else one scan."""
        uids = set(uids)
        if not uids:
            return []
        if len(uids) <= ROWS_BY_UID_LIMIT:
            return self.store.messages_by_uid(self.selected.mailbox_id, uids)
        return [r for r in self.store.list_messages(self.selected.mailbox_id) if r.uid in uids]

    # FETCH ----------------------------------------------------------------------

    def cmd_FETCH(self, cmd) -> None:
        sel = self.selected
        # RFC 2180 §4.1: what was expunged, but not yet told, still answers while it is kept
        uids = self._resolve(cmd.messages, cmd.UID, with_gone=True)
        atts = list(cmd.atts)
        if cmd.changedsince is not None or any(a.name == "MODSEQ" for a in atts):
            self._use_condstore()
        if cmd.changedsince is not None and cmd.vanished:
            # "*" reaches past the last live UID here: expunged UIDs may be above it
            gone = [u for u in self._changes_since(cmd.changedsince).vanished if cmd.messages.contains(u, MAX_UID)]
            if gone:
                self.send(b"* VANISHED (EARLIER) " + replies.sequence_set(gone) + b"\r\n")
        self._fetch(sel, cmd, uids, atts)
        self.ok(cmd, "FETCH completed")

    def _fetch(self, sel: Selection, cmd, uids: list[int], atts: list) -> None:
        """Send the FETCH responses.

        RFC 2180 §4.1.1: rows, parsed forms and the first batch of bodies (all of them in
        almost every FETCH) are read in one snapshot, so a message another session expunges
        meanwhile is still answered in full. Later batches, read once the earlier ones are
        sent (no snapshot is held while a client reads), may find a message gone: it is
        left out, as one expunged before the FETCH began is, and the next NOOP tells of it.
        """
        names = {a.name for a in atts}
        needs_forms = any(a.name in _PRE_RENDERED and a.section is None for a in atts)
        needs_raw = any(a.name not in _FROM_ROW and (a.name not in _PRE_RENDERED or a.section) for a in atts)
        needs_info = any(_needs_structure(a) for a in atts)
        with self.store.read_snapshot():
            if needs_forms and len(uids) > ROWS_BY_UID_LIMIT:
                every, forms = self.store.messages_with_forms(sel.mailbox_id)
                wanted = set(uids)
                rows = {r.uid: r for r in every if r.uid in wanted}
            else:
                rows = {r.uid: r for r in self._rows(uids)}
                forms = {}
            missing = [u for u in uids if u not in rows]
            if missing:
                # RFC 2180 §4.1: what another session expunged, this one not yet told, still answers
                kept = self.store.kept_messages(sel.mailbox_id, missing)
                rows.update((r.uid, r) for r in kept)
                if forms:
                    forms.update(self.store.get_imap_forms(r.blob_id for r in kept))
            uids = [u for u in uids if u in rows]
            if cmd.changedsince is not None:
                uids = [u for u in uids if rows[u].modseq > cmd.changedsince]
            if cmd.partial is not None:
                # RFC 9394 §4: the page of the messages the set (and CHANGEDSINCE) names, counted in UID order
                uids = esearch.partial_slice(uids, cmd.partial)
            # RFC 3501 §6.4.5: fetching a body section sets \Seen (not in EXAMINE)
            if not sel.read_only and any(a.sets_seen for a in atts):
                unseen = [u for u in uids if "\\Seen" not in rows[u].flags]
                if unseen:
                    changed, _ = self.store.store_flags(sel.mailbox_id, unseen, "add", ["\\Seen"])
                    for row in changed:
                        rows[row.uid] = row
                    if "FLAGS" not in names:
                        atts.append(_FLAGS_ATT)
            if needs_forms and not forms:
                forms = self.store.get_imap_forms(rows[u].blob_id for u in uids)
            batches = list(_batches(uids, rows, RAW_BATCH_BYTES if needs_raw else None))
            if needs_raw and batches:
                bodies = self._bodies([rows[u].blob_id for u in batches[0]], needs_info)
        if cmd.UID and "UID" not in names:
            atts.insert(0, _UID_ATT)
        if self.condstore and "MODSEQ" not in names and cmd.changedsince is not None:
            atts.append(_MODSEQ_ATT)
        renderers = self._item_renderers(atts)
        seq_of, told, send = sel.seq_of, sel.flags, self.send
        raws = {}
        for number, batch in enumerate(batches):
            if needs_raw:
                raws, self._infos = bodies if number == 0 else self._bodies([rows[u].blob_id for u in batch], needs_info)
            for uid in batch:
                row = rows[uid]
                raw = raws.get(row.blob_id)
                if needs_raw and raw is None:
                    continue
                items = b" ".join([render(row, forms.get(row.blob_id), raw) for render in renderers])
                send(b"* %d FETCH (%b)\r\n" % (seq_of(uid), items))
                told[uid] = row.flags
            self.conn.flush()  # keep memory flat on a FETCH 1:* of a big mailbox
        self._infos = {}

    def _bodies(self, blob_ids: list[int], with_info: bool) -> tuple[dict, dict]:
        """The bytes of these blobs and, when sections are cut out of them, their MIME trees."""
        with self.store.read_snapshot():
            raws = self.store.get_raws(blob_ids)
            if not with_info:
                return raws, {}
            parsed = self.store.get_parsed(blob_ids)
        return raws, {blob_id: mime.MessageInfo.from_json(p.info_json) for blob_id, p in parsed.items()}

    cmd_UID_FETCH = cmd_FETCH

    def _item_renderers(self, atts) -> list:
        """One function per FETCH item, ``(row, forms, raw) -> bytes``, chosen once per command.

        ``forms`` are the message's stored (ENVELOPE, BODY, BODYSTRUCTURE); ``raw`` its bytes
        when an item needs them. A FETCH 1:* of 10,000 messages runs these 50,000 times.
        """
        out = []
        for att in atts:
            name = att.name
            if name == "UID":
                out.append(lambda row, forms, raw: b"UID %d" % row.uid)
            elif name == "FLAGS":
                out.append(lambda row, forms, raw: b"FLAGS " + self._shown_flags(row.uid, row.flags))
            elif name == "INTERNALDATE":
                out.append(lambda row, forms, raw: b"INTERNALDATE " + _internaldate(row.internaldate))
            elif name == "RFC822.SIZE":
                out.append(lambda row, forms, raw: b"RFC822.SIZE %d" % row.size)
            elif name == "MODSEQ":
                out.append(lambda row, forms, raw: b"MODSEQ (%d)" % row.modseq)
            elif name == "ENVELOPE":
                out.append(lambda row, forms, raw: b"ENVELOPE " + forms[0])
            elif name == "BODYSTRUCTURE":
                out.append(lambda row, forms, raw: b"BODYSTRUCTURE " + forms[2])
            elif name == "BODY" and att.section is None:
                out.append(lambda row, forms, raw: b"BODY " + forms[1])
            elif name in ("BODY", "RFC822") and att.partial is None and not _needs_structure(att):
                # the whole message as it is stored (BODY[], BODY.PEEK[], RFC822): the common full download
                key = att.response_key() + b" {"
                out.append(lambda row, forms, raw: key + b"%d}\r\n" % len(raw) + raw)
            else:
                out.append(functools.partial(self._section_item, att))
        return out

    def _section_item(self, att, row, forms, raw: bytes) -> bytes:
        # the MIME tree is only needed to cut a part out: FETCH reads it with the bodies,
        # other senders of FETCH responses (NOTIFY) one message at a time
        info = None
        if _needs_structure(att):
            info = self._infos.get(row.blob_id) or self.store.get_info(row.blob_id)
        return att.response_key() + b" " + self._section_value(att, raw, info)

    def _section_value(self, att, raw: bytes, info) -> bytes:
        name = att.name
        if name == "RFC822" or not _needs_structure(att):
            data = raw
            if att.partial is not None:
                origin, count = att.partial
                data = data[origin:origin + count]
            if name == "BINARY.SIZE":
                return b"%d" % len(raw)
            return (b"~" if name == "BINARY" and b"\x00" in data else b"") + replies.literal(data)
        if name == "RFC822.HEADER":
            return replies.literal(mime.section(raw, info, (), "HEADER"))
        if name == "RFC822.TEXT":
            return replies.literal(mime.section(raw, info, (), "TEXT"))
        section = att.section
        if name == "BODY" or section.text is not None:
            data = mime.section(raw, info, section.part, section.text, list(section.fields))
            if name == "BINARY.SIZE":
                return b"%d" % len(data)
        else:
            try:
                data = mime.decoded(raw, info, section.part)
            except mime.UnknownEncoding as exc:
                # RFC 3516 §4.3: the server cannot decode this part
                raise UserError("Unknown content transfer encoding", "UNKNOWN-CTE") from exc
            if name == "BINARY.SIZE":
                return b"%d" % len(data)
        if att.partial is not None:
            origin, count = att.partial
            data = data[origin:origin + count]
        if name == "BINARY" and b"\x00" in data:
            return b"~" + replies.literal(data)  # RFC 3516 literal8
        return replies.literal(data)

    def _shown_flags(self, uid: int, flags) -> Atom:
        """A message's flags as the client sees them: stored flags plus this session's \\Recent."""
        return _flag_list(flags, uid in self.selected.recent and not self.rev2)

    def _fetch_flags_line(self, seq: int, uid: int, flags, modseq: int) -> bytes:
        """The unsolicited FETCH that reports a flag change (with MODSEQ under CONDSTORE)."""
        line = b"* %d FETCH (UID %d FLAGS " % (seq, uid) + self._shown_flags(uid, flags)
        if self.condstore:
            line += b" MODSEQ (%d)" % modseq
        return line + b")\r\n"

    # STORE ----------------------------------------------------------------------

    def cmd_STORE(self, cmd) -> None:
        sel = self._writable()
        uids = self._resolve(cmd.messages, cmd.UID)
        if cmd.unchangedsince is not None:
            self._use_condstore()
        mode = {"": "set", "+": "add", "-": "remove"}[cmd.mode]
        changed, refused = self.store.store_flags(sel.mailbox_id, uids, mode, cmd.flags, cmd.unchangedsince)
        self._announce_keywords(sel, [row.flags for row in changed])
        changed_by_uid = {row.uid: row for row in changed}
        for uid in uids:
            if uid in refused:
                continue
            row = changed_by_uid.get(uid)
            if row is not None:
                sel.flags[uid] = row.flags
            if cmd.silent:
                # RFC 7162 §3.1.3: under CONDSTORE even .SILENT reports the new MODSEQ
                if self.condstore and row is not None:
                    self.send(b"* %d FETCH (UID %d MODSEQ (%d))\r\n" % (sel.seq_of(uid), uid, row.modseq))
                continue
            flags = row.flags if row is not None else sel.flags[uid]
            line = b"* %d FETCH (FLAGS " % sel.seq_of(uid) + self._shown_flags(uid, flags)
            line += b" UID %d" % uid
            if self.condstore and row is not None:
                line += b" MODSEQ (%d)" % row.modseq
            self.send(line + b")\r\n")
        code = None
        if refused:
            numbers = refused if cmd.UID else [sel.seq_of(u) for u in refused]
            code = "MODIFIED " + replies.sequence_set(numbers).decode()
        self.ok(cmd, "STORE completed", code)

    cmd_UID_STORE = cmd_STORE

    # COPY / MOVE ----------------------------------------------------------------

    def _target(self, name: str):
        mailbox = self.store.get_mailbox(self.user.id, name)
        if mailbox is None:
            raise UserError(f"No mailbox {name}", "TRYCREATE")
        return mailbox

    def cmd_COPY(self, cmd) -> None:
        sel = self.selected
        uids = self._resolve(cmd.messages, cmd.UID)
        target = self._target(cmd.mailbox)
        pairs = self.store.copy(sel.mailbox_id, uids, target.id)
        self.ok(cmd, "COPY completed", _copyuid(target.uidvalidity, pairs))

    cmd_UID_COPY = cmd_COPY

    def cmd_MOVE(self, cmd) -> None:
        sel = self._writable()
        uids = self._resolve(cmd.messages, cmd.UID)
        target = self._target(cmd.mailbox)
        # into the selected mailbox itself too: new UIDs, the old ones expunged (as Dovecot does)
        pairs = self.store.move(sel.mailbox_id, uids, target.id, self.conn.info.id)
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges
        code = _copyuid(target.uidvalidity, pairs)
        if code:
            self.send(replies.ok(None, "Moved", code))
        self.ok(cmd, "MOVE completed")

    cmd_UID_MOVE = cmd_MOVE

    # SEARCH ---------------------------------------------------------------------

    def cmd_SEARCH(self, cmd) -> None:
        sel = self.selected
        program = cmd.program
        returns = program.returns
        if returns is None and self.rev2:
            returns = frozenset({"ALL"})  # RFC 9051 §7.3.4: IMAP4rev2 answers SEARCH with ESEARCH
        saving = returns is not None and "SAVE" in returns
        previously_saved = frozenset(sel.saved)
        if saving:
            sel.saved = []  # RFC 5182 §2.1: a failed SEARCH (RETURN (SAVE)) leaves the result empty
        if "UTF8=ACCEPT" in self.enabled and program.charset is not None:
            # RFC 9755 §3: the strings of the command are UTF-8 already
            raise CommandSyntaxError("no CHARSET once UTF8=ACCEPT is enabled")
        if program.charset not in (None, "UTF-8", "US-ASCII"):
            raise UserError("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
        if returns is not None and "UPDATE" in returns:
            self._check_new_context(cmd.tag)
        with_modseq = uses_modseq(program.criteria)
        if with_modseq:
            self._use_condstore()
        hits = self.search_rows(program.criteria, previously_saved)
        numbers = [r.uid if cmd.UID else sel.seq_of(r.uid) for r in hits]
        if returns is None:
            line = b"* SEARCH" + b"".join(b" %d" % n for n in numbers)
            if with_modseq and hits:
                line += b" (MODSEQ %d)" % max(r.modseq for r in hits)
            self.send(line + b"\r\n")
        else:
            if saving:
                sel.saved = esearch.saved_uids(returns, [r.uid for r in hits], program.partial)
            if returns != {"SAVE"}:  # RFC 5182 §2.1: SAVE alone answers no ESEARCH
                modseq = esearch.result_modseq(returns, hits) if with_modseq and hits else None
                self.send(esearch.esearch_line(cmd.tag, cmd.UID, numbers, returns, program.partial, modseq))
            if "UPDATE" in returns:
                self.start_search_context(cmd, program.criteria, [r.uid for r in hits])
        self.ok(cmd, "SEARCH completed")

    cmd_UID_SEARCH = cmd_SEARCH

    def search_rows(self, criteria, saved: frozenset[int] | None = None) -> list:
        """The store rows of the messages the client knows that match ``criteria``, in UID order.

        Messages expunged meanwhile (not yet told) are left out (RFC 2180 §4.1.1). ``$`` is
        ``saved``, else the selection's saved result (RFC 5182).
        """
        if self.rev2 and key_names(criteria) & {"RECENT", "NEW", "OLD"}:
            # RFC 9051 has no \Recent flag, so these keys are not in its search-key grammar
            raise CommandSyntaxError("RECENT, NEW and OLD are not IMAP4rev2 search keys")
        sel = self.selected
        ctx = Context(largest_seq=len(sel.uids), largest_uid=sel.uids[-1] if sel.uids else 0,
                      find_text=lambda needle, where: self.store.search_text(sel.mailbox_id, needle, where),
                      saved=frozenset(sel.saved) if saved is None else saved)
        live = {u for u in sel.uids if u not in sel.gone}
        # a top-level TEXT/BODY key narrows the candidates to its FTS hits before anything else
        for key in criteria.keys:
            if isinstance(key, Key) and key.name in ("TEXT", "BODY"):
                live &= ctx.text(key.name, key.arg.decode("utf-8", "replace"))
        infos = {}
        with self.store.read_snapshot():  # no message vanishes between its row and its headers
            rows = self._rows(live)
            if needs_headers(criteria) and rows:
                parsed = self.store.get_parsed(r.blob_id for r in rows)
                infos = {blob_id: mime.MessageInfo.from_json(p.info_json) for blob_id, p in parsed.items()}
        hits = []
        for row in rows:
            candidate = Candidate(sel.seq_of(row.uid), row.uid, row.flags, row.size, row.internaldate,
                                  row.modseq, row.uid in sel.recent, infos.get(row.blob_id))
            if matches(criteria, candidate, ctx):
                hits.append(row)
        return hits

    # -- keeping the selected mailbox in step with the store -------------------------

    def _drain_events(self) -> bool:
        """Take waiting store events; True when the selected mailbox may have changed."""
        if self.events is None:
            return False
        dirty = False
        sel = self.selected
        for event in self.events.drain():
            if self.notify is not None:
                self.notify.collect(self, event)
            if isinstance(event, Overflowed):
                self.events.overflowed = False
                dirty = True
            elif isinstance(event, MailboxChanged) and sel is not None and event.mailbox_id == sel.mailbox_id:
                if event.kind == "deleted":
                    raise MailboxGone()
                dirty = True
        return dirty

    def _sync_quietly(self) -> None:
        """Sync after a failed command, where a sync error must not hide the real answer."""
        try:
            self.sync(self.verb not in NO_EXPUNGE_DURING)
        except (StoreError, MailboxGone):
            pass

    def _tell_notified(self) -> None:
        """News for a silent NOTIFY client; the selected mailbox's only under a SELECTED filter (RFC 5465)."""
        if self.notify is None:
            return
        if self.notify.follows_selected:
            self.sync(self.notify.expunge_at_once, push=True)
        else:
            self._held_news |= self._drain_events()  # told with the next command, as without NOTIFY
            self.notify.report(self)

    def sync(self, allow_expunge: bool, push: bool = False) -> None:
        """Tell the client what changed in the selected mailbox since it last heard.

        Flag changes and new messages are always reported; expunges only when
        ``allow_expunge`` (RFC 3501 §7.4.1), otherwise they wait in ``gone``.
        ``push`` (IDLE) sends news as soon as it is known.
        """
        dirty = self._drain_events() or self._held_news
        self._held_news = False
        if self.notify is not None:
            self.notify.report(self)
        sel = self.selected
        if sel is None or not (dirty or (allow_expunge and sel.gone)):
            return
        if dirty:
            changes = self.store.mailbox_changes(sel.mailbox_id, sel.modseq)
            if changes is None:
                raise MailboxGone()
            known = sel.flags
            sel.gone.update(u for u in changes.vanished if u in known)
            new_rows = []
            self._announce_keywords(sel, [row.flags for row in changes.changed])
            for row in changes.changed:
                if row.uid in known:
                    if row.uid not in sel.gone and row.flags != sel.flags[row.uid]:
                        sel.flags[row.uid] = row.flags
                        self.send(self._fetch_flags_line(sel.seq_of(row.uid), row.uid, row.flags, row.modseq))
                elif not sel.uids or row.uid > sel.uids[-1]:
                    new_rows.append(row)
            sel.modseq = max(sel.modseq, changes.horizon)
            told = bool(changes.vanished)  # expunges of messages it never knew count as told
        else:
            new_rows = []
            told = False
        if allow_expunge and sel.gone:
            self.update_contexts()  # RFC 5267 §4.3.4: REMOVEFROM before the EXPUNGE
            self._report_expunges(sel)
            told = True
        if told and not sel.gone:
            self.store.told_expunges(self.conn.info.id, sel.mailbox_id, sel.modseq)
        if new_rows:
            for row in new_rows:
                sel.uids.append(row.uid)
                sel.flags[row.uid] = row.flags
            sel.renumbered()
            self.send(b"* %d EXISTS\r\n" % len(sel.uids))
            if sel.read_only:
                sel.recent |= self.store.recent_uids(sel.mailbox_id, new_rows[0].uid, sel.uids[-1])
            else:
                # an idler hears of new mail before a \Recent claim's write, not after it
                flush_first = self.conn.flush if push else None
                sel.recent |= self.store.claim_recent_upto(sel.mailbox_id, sel.uids[-1], flush_first)
            if not self.rev2:  # RFC 9051 has no \Recent and no RECENT response
                self.send(b"* %d RECENT\r\n" % len(sel.recent))
            if self.notify is not None:
                self.notify.new_messages(self, new_rows)
        self.update_contexts()  # RFC 5267 §4.3.3: ADDTO after the EXISTS

    def _report_expunges(self, sel: Selection) -> None:
        gone = sorted(sel.gone)
        if "QRESYNC" in self.enabled:
            self.send(b"* VANISHED " + replies.sequence_set(gone) + b"\r\n")
        else:
            # highest first, so each number is still right when the client reads it
            for uid in reversed(gone):
                self.send(b"* %d EXPUNGE\r\n" % sel.seq_of(uid))
        doomed = set(gone)
        sel.uids = [u for u in sel.uids if u not in doomed]
        for uid in gone:
            sel.flags.pop(uid, None)
        sel.recent -= doomed
        sel.gone.clear()
        sel.renumbered()


def _batches(uids: list[int], rows: dict, byte_budget: int | None):
    """Split a FETCH into batches: FLUSH_EVERY messages, or fewer whose bodies fit the budget."""
    if byte_budget is None:
        for start in range(0, len(uids), FLUSH_EVERY):
            yield uids[start:start + FLUSH_EVERY]
        return
    batch: list[int] = []
    size = 0
    for uid in uids:
        row_size = rows[uid].size
        if batch and (len(batch) >= FLUSH_EVERY or size + row_size > byte_budget):
            yield batch
            batch, size = [], 0
        batch.append(uid)
        size += row_size
    if batch:
        yield batch


@functools.lru_cache(maxsize=4096)
def _flag_list(flags: frozenset[str], recent: bool) -> Atom:
    """A flag list as sent; a mailbox has few distinct flag sets, so each is rendered once."""
    return replies.flags(sorted(flags | {"\\Recent"} if recent else flags))


def _internaldate(timestamp: float) -> Atom:
    # in the server's local zone, as the day SEARCH BEFORE/ON/SINCE compare (matcher._day)
    return replies.internaldate(dt.datetime.fromtimestamp(timestamp).astimezone())


def _needs_structure(att) -> bool:
    """Whether a FETCH item cuts into the MIME tree (BODY[] / BINARY[] of the whole message do not)."""
    if att.name == "RFC822":
        return False
    if att.name in ("RFC822.HEADER", "RFC822.TEXT"):
        return True
    return att.section is not None and bool(att.section.part or att.section.text)


def _copyuid(uidvalidity: int, pairs) -> str | None:
    """RFC 4315 §3: COPYUID uidvalidity source-uids target-uids (same order)."""
    if not pairs:
        return None
    src = ",".join(str(s) for s, _ in pairs)
    dst = ",".join(str(d) for _, d in pairs)
    return f"COPYUID {uidvalidity} {src} {dst}"


def _collapse_wildcards(pattern: str) -> str:
    """Each run of wildcards becomes one: "*" if the run holds a "*", else "%"."""
    out: list[str] = []
    run = ""
    for ch in pattern + "\0":
        if ch in "*%":
            run += ch
            continue
        if run:
            out.append("*" if "*" in run else "%")
            run = ""
        out.append(ch)
    return "".join(out[:-1])


class ListPattern:
    """RFC 3501 §6.3.8 LIST matching: "*" matches anything, "%" anything but the delimiter.

    Matched by stepping a set of pattern positions along the name (an NFA), so
    the time is bounded by len(name) × len(pattern) whatever the client sends;
    a backtracking regex would let "%%%%…" patterns run for ever.
    """

    MAX_LENGTH = 600  # after runs of wildcards are collapsed; names have at most 512 characters
    MAX_WILDCARDS = 16  # real clients use one or two

    def __init__(self, reference: str, pattern: str) -> None:
        full = pattern if not reference or pattern.startswith("/") else reference + pattern
        # INBOX is case-insensitive as a top-level name; the store spells it upper case
        if full[:5].upper() == "INBOX" and (len(full) == 5 or full[5] in "/*%"):
            full = "INBOX" + full[5:]
        full = _collapse_wildcards(full)
        if len(full) > self.MAX_LENGTH or full.count("*") + full.count("%") > self.MAX_WILDCARDS:
            raise CommandSyntaxError("Mailbox pattern too long or too many wildcards")
        self.pattern = full

    def _closure(self, positions: set[int]) -> set[int]:
        out = set()
        stack = list(positions)
        p = self.pattern
        while stack:
            i = stack.pop()
            if i not in out:
                out.add(i)
                if i < len(p) and p[i] in "*%":
                    stack.append(i + 1)  # a wildcard may match nothing
        return out

    def fullmatch(self, name: str) -> bool:
        p = self.pattern
        current = self._closure({0})
        for ch in name:
            following = set()
            for i in current:
                if i < len(p):
                    wanted = p[i]
                    if wanted == "*" or (wanted == "%" and ch != "/"):
                        following.add(i)
                    elif wanted == ch:
                        following.add(i + 1)
            if not following:
                return False
            current = self._closure(following)
        return len(p) in current


_FROM_ROW = frozenset({"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"})  # FETCH items the row answers
_PRE_RENDERED = frozenset({"ENVELOPE", "BODY", "BODYSTRUCTURE"})  # FETCH items stored ready to send
_FLAGS_ATT = FetchAtt("FLAGS")
_UID_ATT = FetchAtt("UID")
_MODSEQ_ATT = FetchAtt("MODSEQ")

ImapSession._handlers = {
    verb: getattr(ImapSession, "cmd_" + verb.replace(" ", "_"))
    for verbs in LEGAL.values() for verb in verbs
}
