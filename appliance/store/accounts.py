"""Domains, users, passwords and aliases."""

from __future__ import annotations

import base64
import difflib
import functools
import hashlib
import hmac
import itertools
import os
import re
import time

from appliance.store.errors import AlreadyExists, InvalidName, NotFound, StoreError
from appliance.store.events import AccountsChanged
from appliance.store.models import DEFAULT_MAILBOXES, Resolution, User

# scrypt with 16 MiB of memory per hash: memory-hard, and about 50 ms on a small box.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MAX_ALIAS_DEPTH = 10

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")
_LOCAL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024)
    return "scrypt${}${}${}${}${}".format(
        SCRYPT_N, SCRYPT_R, SCRYPT_P, base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    )


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=64 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def normalize_domain(name: str) -> str:
    domain = name.strip().lower().rstrip(".")
    if not _DOMAIN_RE.match(domain):
        raise InvalidName(f"'{name}' is not a valid domain name")
    return domain


def split_address(address: str) -> tuple[str, str]:
    """``(local, domain)`` of a plain mailbox address, domain lower-cased; InvalidName otherwise."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not _LOCAL_RE.match(local) or len(local) > 64:
        raise InvalidName(f"'{address}' is not a valid mail address")
    return local, normalize_domain(domain)


def normalize_address(address: str) -> str:
    local, domain = split_address(address)
    return f"{local}@{domain}"


class AccountsCache:
    """Answers of the routing lookups (``resolve``, ``is_local_domain``, ``get_sieve``) that
    every RCPT and every delivery asks, kept until the next change of accounts.

    Each change made through this Store moves the generation on once its commit returns;
    an answer is used only while the generation it was read under is still current, so a
    lookup never sees a domain, user, alias or script older than the last change the
    changing caller saw committed. Another process's changes arrive through the change
    journal (``journal``) and forget every answer; an answer also expires after ``MAX_AGE``
    seconds, for a write made without Kotakpos (the sqlite3 shell).
    """

    MAX_AGE = 5.0
    MAX_ENTRIES = 20_000  # bounds memory against address harvesting: then start afresh

    def __init__(self):
        self._generations = itertools.count(1)
        self.generation = 0
        self._entries: dict = {}

    def get(self, key, default=None):
        """The answer kept for ``key``, or ``default`` when none is current."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != self.generation or time.monotonic() - entry[1] > self.MAX_AGE:
            return default
        return entry[2]

    def put(self, key, generation: int, value) -> None:
        """Keep ``value``, read under ``generation`` (sampled before the read began)."""
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries = {}
        self._entries[key] = (generation, time.monotonic(), value)

    def invalidate(self) -> None:
        # next() on a count is atomic under the GIL: two changes never share a generation
        self.generation = next(self._generations)
        self._entries = {}


_MISSING = object()


def _user(row) -> User:
    return User(id=row["id"], address=row["address"], quota=row["quota"], created=row["created"])


class AccountsMixin:
    @property
    def accounts_cache(self) -> AccountsCache:
        cache = self.__dict__.get("_accounts_cache")
        if cache is None:  # first use; setdefault is atomic, so racing threads share one
            cache = self.__dict__.setdefault("_accounts_cache", AccountsCache())
        return cache

    def _write_accounts(self, job):
        """``db.write`` for changes routing depends on: the cache forgets once it is committed."""
        try:
            return self.db.write(job)
        finally:
            self.accounts_cache.invalidate()

    # -- domains -----------------------------------------------------------------------

    def add_domain(self, name: str) -> str:
        domain = normalize_domain(name)

        def job(tx):
            if tx.execute("SELECT 1 FROM domains WHERE name = ? COLLATE NOCASE", (domain,)).fetchone():
                raise AlreadyExists(f"domain {domain} already exists")
            tx.execute("INSERT INTO domains(name, created) VALUES (?, ?)", (domain, time.time()))
            tx.emit(AccountsChanged("domain-added", domain))

        self._write_accounts(job)
        return domain

    def delete_domain(self, name: str) -> None:
        domain = normalize_domain(name)

        def job(tx):
            row = tx.execute("SELECT id FROM domains WHERE name = ? COLLATE NOCASE", (domain,)).fetchone()
            if not row:
                raise NotFound(f"no domain {domain}")
            users = tx.execute("SELECT count(*) FROM users WHERE domain_id = ?", (row["id"],)).fetchone()[0]
            if users:
                raise StoreError(f"domain {domain} still has {users} user(s); delete them first")
            tx.execute("DELETE FROM aliases WHERE alias LIKE ? ESCAPE '\\'", ("%@" + _like_escape(domain),))
            tx.execute("DELETE FROM domains WHERE id = ?", (row["id"],))
            tx.emit(AccountsChanged("domain-deleted", domain))

        self._write_accounts(job)

    def list_domains(self) -> list[str]:
        with self.db.reader() as conn:
            return [r["name"] for r in conn.execute("SELECT name FROM domains ORDER BY name")]

    def is_local_domain(self, name: str) -> bool:
        key = ("domain", name.lower().rstrip("."))
        cache = self.accounts_cache
        found = cache.get(key)
        if found is None:
            generation = cache.generation
            with self.db.reader() as conn:
                found = conn.execute("SELECT 1 FROM domains WHERE name = ? COLLATE NOCASE", (key[1],)).fetchone() is not None
            cache.put(key, generation, found)
        return found

    # -- users -------------------------------------------------------------------------

    def add_user(self, address: str, password: str, quota: int = 0) -> User:
        local, domain = split_address(address)
        address = f"{local}@{domain}"
        if not password:
            raise StoreError("the password must not be empty")
        if quota < 0:
            raise StoreError("the quota must be 0 (unlimited) or a positive number of bytes")
        hashed = hash_password(password)

        def job(tx):
            d = tx.execute("SELECT id FROM domains WHERE name = ? COLLATE NOCASE", (domain,)).fetchone()
            if not d:
                raise NotFound(f"unknown domain {domain}; add it first with 'kotakpos domain add {domain}'")
            if tx.execute("SELECT 1 FROM users WHERE address = ? COLLATE NOCASE", (address,)).fetchone():
                raise AlreadyExists(f"user {address} already exists")
            now = time.time()
            cur = tx.execute("INSERT INTO users(address, domain_id, password, quota, created) VALUES (?,?,?,?,?)",
                             (address, d["id"], hashed, quota, now))
            user_id = cur.lastrowid
            for name, special_use in DEFAULT_MAILBOXES:
                self._insert_mailbox(tx, user_id, name, special_use)
                tx.execute("INSERT INTO subscriptions(user_id, name) VALUES (?, ?)", (user_id, name))
            tx.emit(AccountsChanged("user-added", address))
            return User(user_id, address, quota, now)

        return self._write_accounts(job)

    def delete_user(self, address: str) -> None:
        address = normalize_address(address)

        def job(tx):
            row = tx.execute("SELECT id FROM users WHERE address = ? COLLATE NOCASE", (address,)).fetchone()
            if not row:
                raise NotFound(f"no user {address}")
            for mb in tx.execute("SELECT id FROM mailboxes WHERE user_id = ?", (row["id"],)).fetchall():
                self._delete_mailbox_rows(tx, mb["id"])
            tx.execute("DELETE FROM subscriptions WHERE user_id = ?", (row["id"],))
            self._forget_user_filters(tx, row["id"])  # a later user with the same id starts clean
            self._forget_user_credentials(tx, row["id"])
            tx.execute("DELETE FROM users WHERE id = ?", (row["id"],))
            tx.emit(AccountsChanged("user-deleted", address))

        self._write_accounts(job)

    def set_password(self, address: str, password: str) -> None:
        address = normalize_address(address)
        if not password:
            raise StoreError("the password must not be empty")
        hashed = hash_password(password)

        def job(tx):
            if tx.execute("UPDATE users SET password = ? WHERE address = ? COLLATE NOCASE",
                          (hashed, address)).rowcount == 0:
                raise NotFound(f"no user {address}")
            tx.emit(AccountsChanged("user-changed", address))

        self._write_accounts(job)

    def set_quota(self, address: str, quota: int) -> None:
        address = normalize_address(address)
        if quota < 0:
            raise StoreError("the quota must be 0 (unlimited) or a positive number of bytes")

        def job(tx):
            if tx.execute("UPDATE users SET quota = ? WHERE address = ? COLLATE NOCASE",
                          (quota, address)).rowcount == 0:
                raise NotFound(f"no user {address}")
            tx.emit(AccountsChanged("user-changed", address))

        self._write_accounts(job)

    def get_user(self, address: str) -> User | None:
        with self.db.reader() as conn:
            row = conn.execute("SELECT * FROM users WHERE address = ? COLLATE NOCASE", (address.strip(),)).fetchone()
        return _user(row) if row else None

    def get_user_by_id(self, user_id: int) -> User | None:
        with self.db.reader() as conn:
            row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return _user(row) if row else None

    def first_user(self) -> User | None:
        """The user created first: the default administrator (``[server] admin_address``)."""
        with self.db.reader() as conn:
            row = conn.execute("SELECT * FROM users ORDER BY id LIMIT 1").fetchone()
        return _user(row) if row else None

    def list_users(self) -> list[tuple[User, int]]:
        """Every user with the bytes their mail uses."""
        with self.db.reader() as conn:
            rows = conn.execute(
                "SELECT u.*, (SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id"
                " WHERE b.user_id = u.id) AS used FROM users u ORDER BY address"
            ).fetchall()
        return [(_user(r), r["used"]) for r in rows]

    def usage(self, user_id: int) -> int:
        """Bytes of mail the user keeps (counted against the quota)."""
        with self.db.reader() as conn:
            return conn.execute(
                "SELECT coalesce(sum(m.size), 0) FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id"
                " WHERE b.user_id = ?", (user_id,)).fetchone()[0]

    def get_login(self, address: str) -> tuple[User, str] | None:
        """The user and their stored password hash (for the login cache in appliance.auth)."""
        with self.db.reader() as conn:
            row = conn.execute("SELECT * FROM users WHERE address = ? COLLATE NOCASE", (address.strip(),)).fetchone()
        return (_user(row), row["password"]) if row else None

    def verify_password(self, address: str, password: str) -> User | None:
        """The user, if ``password`` is theirs. Slow by design (scrypt)."""
        with self.db.reader() as conn:
            row = conn.execute("SELECT * FROM users WHERE address = ? COLLATE NOCASE", (address.strip(),)).fetchone()
        if row is None:
            # Spend the same time as a real check, so timing does not reveal which users exist.
            check_password(password, _dummy_hash())
            return None
        return _user(row) if check_password(password, row["password"]) else None

    # -- aliases -----------------------------------------------------------------------

    def add_alias(self, alias: str, targets: list[str]) -> None:
        """Mail for ``alias`` (an address, or ``@domain`` for a catch-all) goes to ``targets``."""
        alias = self._normalize_alias(alias)
        if not targets:
            raise StoreError("an alias needs at least one target")
        clean = [normalize_address(t) for t in targets]

        def job(tx):
            domain = alias.rpartition("@")[2]
            if not tx.execute("SELECT 1 FROM domains WHERE name = ? COLLATE NOCASE", (domain,)).fetchone():
                raise NotFound(f"unknown domain {domain}; aliases must belong to a local domain")
            for target in clean:
                self._check_local_target(tx, target)
            for target in clean:
                tx.execute("INSERT OR IGNORE INTO aliases(alias, target) VALUES (?, ?)", (alias, target))
            if self._has_loop(tx, alias):
                raise StoreError(f"alias {alias} would make a loop")
            tx.emit(AccountsChanged("alias-changed", alias))

        self._write_accounts(job)

    def delete_alias(self, alias: str, targets: list[str] | None = None) -> None:
        alias = self._normalize_alias(alias)

        def job(tx):
            if targets:
                removed = sum(tx.execute("DELETE FROM aliases WHERE alias = ? COLLATE NOCASE AND target = ? COLLATE NOCASE",
                                         (alias, normalize_address(t))).rowcount for t in targets)
            else:
                removed = tx.execute("DELETE FROM aliases WHERE alias = ? COLLATE NOCASE", (alias,)).rowcount
            if not removed:
                raise NotFound(f"no alias {alias}" + (" with those targets" if targets else ""))
            tx.emit(AccountsChanged("alias-changed", alias))

        self._write_accounts(job)

    def list_aliases(self) -> dict[str, list[str]]:
        with self.db.reader() as conn:
            rows = conn.execute("SELECT alias, target FROM aliases ORDER BY alias, target").fetchall()
        result: dict[str, list[str]] = {}
        for r in rows:
            result.setdefault(r["alias"], []).append(r["target"])
        return result

    def resolve(self, address: str) -> Resolution | None:
        """Where mail to a local ``address`` goes, following aliases and the catch-all.

        Returns None when the address is unknown (the SMTP server answers 550 5.1.1).
        An address that is both a user and an alias reaches the user and the targets.
        """
        cache = self.accounts_cache
        found = cache.get(("resolve", address), _MISSING)
        if found is _MISSING:
            generation = cache.generation
            try:
                found = self._resolve(normalize_address(address))
            except InvalidName:
                found = None
            cache.put(("resolve", address), generation, found)
        return found

    def _resolve(self, start: str) -> Resolution | None:
        with self.db.reader() as conn:
            users: dict[int, User] = {}
            external: list[str] = []
            seen: set[str] = set()
            pending = [(start, 0)]
            found_any = False
            while pending:
                current, depth = pending.pop(0)
                if current in seen or depth > MAX_ALIAS_DEPTH:
                    continue
                seen.add(current)
                domain = current.rpartition("@")[2]
                local_domain = conn.execute("SELECT 1 FROM domains WHERE name = ? COLLATE NOCASE", (domain,)).fetchone()
                if not local_domain:
                    if current not in external:
                        external.append(current)
                    found_any = True
                    continue
                user_row = conn.execute("SELECT * FROM users WHERE address = ? COLLATE NOCASE", (current,)).fetchone()
                if user_row:
                    users[user_row["id"]] = _user(user_row)
                    found_any = True
                targets = [r["target"] for r in conn.execute(
                    "SELECT target FROM aliases WHERE alias = ? COLLATE NOCASE", (current,))]
                if not user_row and not targets:
                    targets = [r["target"] for r in conn.execute(
                        "SELECT target FROM aliases WHERE alias = ? COLLATE NOCASE", ("@" + domain,))]
                for target in targets:
                    found_any = True
                    pending.append((target, depth + 1))
        if not found_any or (not users and not external):
            return None
        return Resolution(users=tuple(users.values()), external=tuple(external))

    def alias_targets(self, alias: str) -> list[str]:
        with self.db.reader() as conn:
            return [r["target"] for r in conn.execute(
                "SELECT target FROM aliases WHERE alias = ? COLLATE NOCASE ORDER BY target", (alias,))]

    @staticmethod
    def _normalize_alias(alias: str) -> str:
        alias = alias.strip()
        if alias.startswith("@"):
            return "@" + normalize_domain(alias[1:])
        return normalize_address(alias)

    @staticmethod
    def _check_local_target(tx, target: str) -> None:
        """A target in a local domain must be a user or an alias there (a typo would lose
        the mail, or feed it to the catch-all); other domains' addresses are forwarded to."""
        domain = target.rpartition("@")[2]
        if not tx.execute("SELECT 1 FROM domains WHERE name = ? COLLATE NOCASE", (domain,)).fetchone():
            return
        pattern = "%@" + _like_escape(domain)
        names = [r[0] for r in tx.execute(
            "SELECT address FROM users WHERE address LIKE ? ESCAPE '\\'"
            " UNION SELECT alias FROM aliases WHERE alias LIKE ? ESCAPE '\\'", (pattern, pattern))]
        if target.lower() in (n.lower() for n in names):
            return
        close = difflib.get_close_matches(target.lower(), [n.lower() for n in names], n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise NotFound(f"{target} is neither a user nor an alias of the local domain {domain}{hint}"
                       " (add the user first, or name an address of another domain to forward to)")

    @staticmethod
    def _has_loop(tx, start: str) -> bool:
        """True when following aliases from ``start`` leads back to it."""
        stack, seen = [start], set()
        while stack:
            current = stack.pop()
            for r in tx.execute("SELECT target FROM aliases WHERE alias = ? COLLATE NOCASE", (current,)):
                target = r["target"].lower()
                if target == start.lower():
                    return True
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return False


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("not a real password")
