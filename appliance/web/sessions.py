"""Account page sessions, kept in the server's memory.

A session is a random token in a cookie (Secure, HttpOnly, SameSite=Strict) naming an
entry here; signing out deletes the entry, so a copied cookie is worthless afterwards.
Each carries its own CSRF token, put in every form and compared on every POST. Signing in
gives a new token (no session fixation). Entries end after ``IDLE`` seconds unused or
``LIFETIME`` seconds in all; a restart signs everyone out. At most ``MAX_SESSIONS`` are
kept: past that the oldest visitors go first, so a flood of page loads cannot fill the
memory or sign anyone out.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "kotakpos_session"
IDLE = 30 * 60
LIFETIME = 12 * 3600
MAX_SESSIONS = 10_000


@dataclass
class WebSession:
    token: str                     # the cookie's value
    csrf: str                      # the forms' hidden field; compared on every POST
    created: float
    seen: float                    # last request; IDLE counts from here
    user_id: int | None = None     # set once signed in (both steps)
    address: str = ""              # the signed-in (or half signed-in) user's address
    pending_user_id: int | None = None  # the password was right; the TOTP code is still asked
    totp_secret: str | None = None      # being enrolled: shown, not yet confirmed
    notices: list = field(default_factory=list)   # (kind, text key, value shown once) for the next page
    sieve_draft: dict | None = None     # the Sieve editor's last check or save (text, error), shown once


class Sessions:
    def __init__(self, clock=time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, WebSession] = {}

    def new(self) -> WebSession:
        now = self._clock()
        session = WebSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._prune(now)
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> WebSession | None:
        """The live session for a cookie's token, or None (unknown, signed out or expired)."""
        if not token:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now - session.seen > IDLE or now - session.created > LIFETIME:
                del self._sessions[token]
                return None
            session.seen = now
            return session

    def renew(self, session: WebSession) -> WebSession:
        """The same session under new tokens (after signing in): the old cookie stops working."""
        with self._lock:
            self._sessions.pop(session.token, None)
            session.token, session.csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            self._sessions[session.token] = session
        return session

    def end(self, session: WebSession) -> None:
        with self._lock:
            self._sessions.pop(session.token, None)

    def end_user(self, user_id: int, keep: WebSession | None = None) -> None:
        """Sign a user out everywhere but ``keep`` (after a password change)."""
        with self._lock:
            for token, s in list(self._sessions.items()):
                if s.user_id == user_id and s is not keep:
                    del self._sessions[token]

    def _prune(self, now: float) -> None:
        for token, s in list(self._sessions.items()):
            if now - s.seen > IDLE or now - s.created > LIFETIME:
                del self._sessions[token]
        while len(self._sessions) >= MAX_SESSIONS:
            # Dicts keep order: the oldest visitor who never signed in goes first, so a flood
            # of page loads cannot push out the people who did.
            visitors = (t for t, s in self._sessions.items() if s.user_id is None and s.pending_user_id is None)
            del self._sessions[next(visitors, next(iter(self._sessions)))]
