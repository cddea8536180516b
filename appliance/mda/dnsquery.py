"""DNS for the filters: short timeouts, a cache, and no waiting on a resolver that is gone.

``Resolver.query`` answers from a shared cache when it can. With ``resolver = "none"``
it never asks; after a timeout it stops asking for ``DOWN_FOR`` seconds. Either way it
raises ``Unavailable`` at once, so the checks record ``temperror`` and mail keeps its
speed on a LAN or a test box without DNS.
"""

from __future__ import annotations

import logging
import threading
import time

import dns.exception
import dns.name
import dns.resolver

from appliance.net.dns import make_resolver

log = logging.getLogger("kotakpos.mda")

DOWN_FOR = 60.0  # seconds DNS counts as unreachable after a timeout


class Unavailable(Exception):
    """DNS could not answer now (temperror)."""


class Resolver:
    def __init__(self, setting: str, timeout: float):
        """``setting``: the ``[dns] resolver`` value ("" the system's, "none", "ip", "ip:port")."""
        self.timeout = timeout
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._resolver = make_resolver(setting, timeout)
        if self._resolver is not None:
            self._resolver.cache = dns.resolver.LRUCache(10000)

    @property
    def configured(self) -> bool:
        """It may ask a DNS server at all (``[dns] resolver`` is not "none")."""
        return self._resolver is not None

    @property
    def available(self) -> bool:
        return self._resolver is not None and time.monotonic() >= self._down_until

    def query(self, name: str, rdtype: str) -> list:
        """The records of ``name`` (empty when it or the type does not exist). Raises Unavailable."""
        if not self.available:
            raise Unavailable("DNS is not reachable")
        try:
            return list(self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, OSError) as e:
            with self._lock:
                self._down_until = time.monotonic() + DOWN_FOR
            log.warning("DNS query %s %s failed (%s): DNS checks record temperror for %ds", name, rdtype,
                        type(e).__name__, DOWN_FOR)
            raise Unavailable(str(e)) from e
        except (dns.exception.DNSException, ValueError) as e:
            raise Unavailable(str(e)) from e

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record of ``name`` as one byte string (its strings joined)."""
        return [b"".join(r.strings) for r in self.query(name, "TXT")]

    def key_record(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """The first TXT record of ``name``, as dkimpy's ``dnsfunc`` asks for a DKIM or ARC key."""
        name = name.decode() if isinstance(name, bytes) else name
        records = self.txt(name.rstrip("."))
        return records[0] if records else None
