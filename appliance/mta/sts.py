"""MTA-STS (RFC 8461): a domain's published demand for verified TLS to its MX hosts.

A TXT record ``_mta-sts.<domain>`` ("v=STSv1; id=...") says that a policy exists; the
policy itself is fetched over verified HTTPS from
``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (no redirects, at most 64 KiB) and
cached for its ``max_age`` in ``mta-sts.json`` in the data folder, so it survives
restarts. While the TXT id is unchanged and the cache is fresh, no fetch happens; when
DNS or HTTPS fail, an unexpired cached policy keeps applying (§5.1), so an attacker who
blocks the lookup cannot switch the protection off.

``enforce``: only MX hosts the policy names are used, each with STARTTLS and a verified
certificate. ``testing``: mismatches are logged, mail flows as without a policy.
``none``: the domain withdrew its policy.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import dns.exception
import dns.resolver

log = logging.getLogger("kotakpos.mta")

CACHE_FILE = "mta-sts.json"
MAX_POLICY_BYTES = 65536
MAX_AGE_LIMIT = 31557600   # §3.2: at most one year
FETCH_TIMEOUT = 10.0


@dataclass(frozen=True)
class Policy:
    id: str               # the TXT record's id when it was fetched
    mode: str             # enforce | testing | none
    mx: tuple[str, ...]   # host patterns, "*.example.net" matches one leftmost label
    max_age: int          # seconds the policy stays valid after the fetch
    fetched: float

    def expired(self, now: float) -> bool:
        return now > self.fetched + self.max_age

    def allows(self, host: str) -> bool:
        return any(matches(pattern, host) for pattern in self.mx)


def matches(pattern: str, host: str) -> bool:
    """§4.1: exact (case-insensitive) or a wildcard for exactly the leftmost label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == host


def parse_policy(text: str, policy_id: str, now: float) -> Policy:
    """§3.2 policy body ("key: value" lines). Raises ValueError when it is not a valid policy."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"not a policy line: {line[:80]!r}")
        fields.setdefault(key.strip().lower(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        raise ValueError("not an STSv1 policy")
    mode = (fields.get("mode") or [""])[0]
    if mode not in ("enforce", "testing", "none"):
        raise ValueError(f"unknown mode {mode!r}")
    max_age = (fields.get("max_age") or [""])[0]
    if not re.fullmatch(r"\d{1,10}", max_age):
        raise ValueError("max_age missing or not a number")
    mx = tuple(fields.get("mx", []))
    if mode != "none" and not mx:
        raise ValueError("no mx patterns")
    return Policy(policy_id, mode, mx, min(int(max_age), MAX_AGE_LIMIT), now)


class _PolicyConnection(http.client.HTTPSConnection):
    """HTTPS to ``host`` at an address we resolved ourselves (our resolver, not the system's)."""

    def __init__(self, host: str, address: str, port: int, context: ssl.SSLContext):
        super().__init__(host, port, context=context, timeout=FETCH_TIMEOUT)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class PolicyCache:
    """Policies by domain: looked up, fetched, cached on disk, and shared by all runner threads."""

    def __init__(self, data_dir: Path | str, context: ssl.SSLContext, port: int = 443):
        self.path = Path(data_dir) / CACHE_FILE
        self.context = context   # verifying: a policy is only as good as its HTTPS
        self.port = port
        self._lock = threading.Lock()
        self._policies = self._load()

    def _load(self) -> dict[str, Policy]:
        try:
            data = json.loads(self.path.read_text())
            return {domain: Policy(**{**p, "mx": tuple(p["mx"])}) for domain, p in data.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError, KeyError) as e:
            log.warning("ignoring the unreadable MTA-STS cache %s: %s", self.path, e)
            return {}

    def _save(self) -> None:
        tmp = self.path.with_name(CACHE_FILE + ".partial")
        tmp.write_text(json.dumps({d: asdict(p) for d, p in self._policies.items()}, indent=1))
        os.replace(tmp, self.path)

    def policy(self, domain: str, resolver: dns.resolver.Resolver, addresses) -> Policy | None:
        """The policy in force for ``domain`` (None: no policy).

        ``addresses(name, resolver)`` resolves the policy host (the transport's lookup).
        """
        now = time.time()
        with self._lock:
            cached = self._policies.get(domain)
        fresh = cached if cached is not None and not cached.expired(now) else None
        try:
            policy_id = _record_id(domain, resolver)
        except dns.exception.DNSException:
            return fresh
        if policy_id is None or (fresh is not None and fresh.id == policy_id):
            # No record now: a cached policy still binds until it expires (§5.1).
            return fresh
        try:
            policy = self._fetch(domain, policy_id, resolver, addresses, now)
        except (OSError, ValueError, http.client.HTTPException, dns.exception.DNSException) as e:
            log.warning("MTA-STS policy of %s could not be fetched: %s", domain, e)
            return fresh
        with self._lock:
            self._policies[domain] = policy
            self._save()
        log.info("MTA-STS policy of %s: mode %s, mx %s, max_age %d", domain, policy.mode, ",".join(policy.mx),
                 policy.max_age)
        return policy

    def _fetch(self, domain: str, policy_id: str, resolver, addresses, now: float) -> Policy:
        host = f"mta-sts.{domain}"
        found = addresses(host, resolver)
        if not found:
            raise ValueError(f"{host} has no address")
        connection = _PolicyConnection(host, found[0], self.port, self.context)
        try:
            connection.request("GET", "/.well-known/mta-sts.txt", headers={"User-Agent": "Kotakpos"})
            response = connection.getresponse()
            if response.status != 200:  # §3.3: redirects are not followed
                raise ValueError(f"HTTP {response.status}")
            if response.headers.get_content_type() != "text/plain":
                raise ValueError(f"policy served as {response.headers.get_content_type()}")
            body = response.read(MAX_POLICY_BYTES + 1)
        finally:
            connection.close()
        if len(body) > MAX_POLICY_BYTES:
            raise ValueError("policy larger than 64 KiB")
        return parse_policy(body.decode("utf-8"), policy_id, now)


def _record_id(domain: str, resolver: dns.resolver.Resolver) -> str | None:
    """The id of the domain's single "v=STSv1" TXT record (§3.1), or None when there is none."""
    try:
        answer = resolver.resolve(f"_mta-sts.{domain}", "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    records = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
    records = [r for r in records if r.startswith("v=STSv1")]
    if len(records) != 1:
        return None
    m = re.search(r"(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)", records[0])
    return m.group(1) if m else None
