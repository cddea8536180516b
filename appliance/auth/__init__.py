"""Logins for every protocol, with one shared defence against guessing.

Each failed login is answered more slowly than the last, both per client address and per
account (so an account guessed from many addresses slows down too). An address that
keeps failing is refused for ``auth.block_seconds``; loopback and trusted networks — a
webmail on the same box — are never blocked wholesale, only slowed per account. Nothing
here ever logs or stores a password.

The failure counts and blocks are the server's, not one process's: they live in the
store's runtime table (``store.runtime``), which every worker process reads and writes
atomically, so thirty wrong passwords spread over eight workers count as thirty, and a
block or an unblock by the admin holds in every worker at once.

Mail clients (IMAP, POP3, SMTP submission) may log in with an app password
(``app_passwords``) as well as the main password, or with app passwords only
(``auth.require_app_passwords``); the account page takes only the main password. Both
count failures in the same tables.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time

from appliance.auth.app_passwords import digest as app_password_digest
from appliance.net.addresses import Networks, is_loopback

log = logging.getLogger("kotakpos.auth")

FIRST_DELAY = 0.1   # seconds after the first failure; doubles with each further one
FORGET_AFTER = 3600.0  # failures older than this no longer count
CACHE_SECONDS = 3600.0  # how long a verified login skips the deliberately slow hash
USE_NOTE_SECONDS = 60.0  # an app password's "last used" is written at most this often per address


class Authenticator:
    def __init__(self, store, auth_config, sleep=time.sleep):
        self.store = store
        self.config = auth_config
        self.trusted = Networks(auth_config.trusted_networks)
        self._sleep = sleep
        self.shared = store.runtime  # failures and blocks, server-wide (module docstring)
        self._lock = threading.Lock()
        # Verified logins, as Dovecot's auth cache: a phone checking mail every minute
        # should not cost 50 ms of scrypt each time. Entries hold an HMAC of the password
        # and the stored hash under a per-process key — never the password — so a changed
        # password (a new stored hash) can never match an old entry.
        self._cache_key = os.urandom(32)
        self._cache: dict[str, tuple[bytes, float]] = {}

    def reconfigure(self, auth_config) -> None:
        """Take a reloaded [auth] section; failure counts and blocks so far are kept."""
        self.config = auth_config
        self.trusted = Networks(auth_config.trusted_networks)

    # -- policy questions the protocols ask ----------------------------------------------

    def plaintext_allowed(self, conn) -> bool:
        """Passwords only inside TLS, unless the config allows plaintext from trusted networks."""
        if conn.is_tls:
            return True
        return self.config.allow_plaintext and (conn.is_loopback or self.trusted.contains(conn.peer_ip))

    def is_trusted(self, ip: str) -> bool:
        return is_loopback(ip) or self.trusted.contains(ip)

    def blocked(self, conn) -> bool:
        """True while the client's address is refused for having failed too often."""
        return self.is_blocked(conn.peer_ip)

    def is_blocked(self, ip: str) -> bool:
        entry, _ = self.shared.failures(ip, "")
        return bool(entry and entry.blocked_until > time.time())

    # -- logging in ------------------------------------------------------------------------

    def login(self, address: str, password: str, conn):
        """A mail client's login: the user if the password (or an app password) is right, else
        None (after a growing delay)."""
        return self._login(address, password, conn.peer_ip, conn.info.listener, mail_client=True)

    def login_account_page(self, address: str, password: str, ip: str):
        """A sign-in on the account page: the main password only, throttled like every login."""
        return self._login(address, password, ip, "web", mail_client=False)

    def _login(self, address: str, password: str, ip: str, listener: str, mail_client: bool):
        by_ip, by_account = self.shared.failures(ip, address.lower())
        if by_ip and by_ip.blocked_until > time.time():
            log.info("auth refused ip=%s user=%s: address blocked", ip, address)
            return None
        if address and password:
            user, failure, how = self._verify(address, password, ip, mail_client)
        else:
            user, failure, how = None, "empty name or password", ""
        if user is not None:
            if by_ip or by_account or address.lower() != user.address.lower():
                self.shared.clear_failures(ip, user.address.lower())
            log.info("auth ok ip=%s user=%s listener=%s%s", ip, user.address, listener, how)
            return user
        self.record_failure(ip, address, failure, listener)
        return None

    def record_failure(self, ip: str, address: str, why: str, listener: str) -> None:
        """Count, log and delay a failed login (also one found after the password: a wrong
        two-step code), in the same tables as every other."""
        delay = self._record_failure(ip, address.lower())
        # The admin learns why; the client never does (the protocols answer every failure alike).
        log.info("auth failed ip=%s user=%s listener=%s: %s, delay=%.1fs", ip, address, listener, why, delay)
        self._sleep(delay)

    def _verify(self, address: str, password: str, ip: str, mail_client: bool):
        """(user, None, how) for a right password, else (None, why it failed, "")."""
        found = self.store.get_login(address)
        if found is None:
            self.store.verify_password(address, password)  # same slow path: no user enumeration by timing
            return None, "unknown user", ""
        user, stored_hash = found
        if mail_client:
            app_password = self.store.find_app_password(user.id, app_password_digest(password))
            if app_password is not None:
                if app_password.last_ip != ip or (app_password.last_used or 0) < time.time() - USE_NOTE_SECONDS:
                    self.store.app_password_used(app_password.id, ip)
                return user, None, f" app-password={app_password.id}"
            if self.config.require_app_passwords:
                return None, "not an app password (auth.require_app_passwords)", ""
        token = hmac.new(self._cache_key, password.encode() + b"\0" + stored_hash.encode(), hashlib.sha256).digest()
        key = user.address.lower()
        with self._lock:
            cached = self._cache.get(key)
        if cached and cached[1] > time.time() and hmac.compare_digest(cached[0], token):
            return user, None, ""
        user = self.store.verify_password(address, password)
        if user is None:
            return None, "wrong password", ""
        with self._lock:
            self._cache[key] = (token, time.time() + CACHE_SECONDS)
        return user, None, ""

    def _record_failure(self, ip: str, account: str) -> float:
        now = time.time()
        trusted = self.is_trusted(ip)
        by_ip, by_account = self.shared.record_failure(ip, account, now, FORGET_AFTER,
                                                       None if trusted else self.config.block_after,
                                                       self.config.block_seconds)
        if by_ip.blocked_until > now and not trusted:
            log.warning("blocking ip=%s for %ds after %d failed logins", ip, self.config.block_seconds, by_ip.count)
        # A trusted address is slowed only by the account's own failures.
        count = by_account.count if trusted else max(by_ip.count, by_account.count)
        return min(self.config.fail_delay_max, FIRST_DELAY * 2 ** (count - 1))

    # -- administration -----------------------------------------------------------------

    def blocked_addresses(self) -> list[dict]:
        now = time.time()
        return [entry for entry in self.failing_addresses() if entry["until"] > now]

    def failing_addresses(self) -> list[dict]:
        """Every address with failed logins; ``trusted`` ones are never blocked by failures."""
        self.shared.prune_failures(time.time() - FORGET_AFTER, time.time())
        return [{"ip": f.key, "failures": f.count, "until": f.blocked_until, "trusted": self.is_trusted(f.key)}
                for f in self.shared.failing_addresses()]

    def block(self, ip: str, seconds: float) -> None:
        now = time.time()
        self.shared.block(ip, now + seconds, now)

    def unblock(self, ip: str) -> bool:
        return self.shared.unblock(ip)
