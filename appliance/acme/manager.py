"""When to ask the CA: at start if the certificate is self-signed or ends within
``renew_days``, then once a day; after a failure, again after ``retry_interval``."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from appliance.acme.issuer import Challenges, IssueError, install, issue
from appliance.net.tls import ensure_certificate

log = logging.getLogger("kotakpos.acme")

CHECK_INTERVAL = 86400.0


@dataclass(frozen=True)
class CertificateInfo:
    not_after: datetime.datetime
    self_signed: bool
    issuer: str


def certificate_info(path: Path) -> CertificateInfo:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    issuer = cert.issuer.rfc4514_string()
    return CertificateInfo(cert.not_valid_after_utc, cert.issuer == cert.subject, issuer)


class CertificateManager:
    def __init__(self, acme_config, hostname: str, data_dir: Path, tls, challenges: Challenges, installed=None):
        """``installed()``: called after a new certificate is in place and loaded here (the
        other worker processes of the server load it then)."""
        self.config = acme_config
        self.names = [hostname] + [n for n in acme_config.names if n != hostname]
        self.data_dir = data_dir
        self.tls = tls                      # appliance.net.tls.TlsContexts: its files and reload()
        self.challenges = challenges
        self.installed = installed
        self.last_error = ""                # why the last order failed ("" after a success)
        self.last_attempt = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="acme", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            ok = self.renew_if_due()
            self._stop.wait(CHECK_INTERVAL if ok else self.config.retry_interval)

    def due(self, now: datetime.datetime | None = None) -> bool:
        """True when the certificate is self-signed or ends within ``renew_days`` of ``now``."""
        info = certificate_info(self.tls.cert_path)
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return info.self_signed or info.not_after - now <= datetime.timedelta(days=self.config.renew_days)

    def renew_if_due(self, now: datetime.datetime | None = None) -> bool:
        """Order a certificate if one is due; False when an order failed."""
        if not self.due(now):
            return True
        self.last_attempt = time.time()
        try:
            fullchain, key = issue(self.config.directory, self.names, self.data_dir / "acme" / "account.pem",
                                   self.challenges, self.config.email, self.config.ca_file)
        except IssueError as e:
            self.last_error = str(e)
            self._fall_back()
            return False
        install(self.tls.cert_path, self.tls.key_path, fullchain, key)
        self._reload()
        self.last_error = ""
        info = certificate_info(self.tls.cert_path)
        log.info("new certificate for %s from %s, valid until %s", ", ".join(self.names), info.issuer,
                 info.not_after.isoformat())
        return True

    def _reload(self) -> None:
        self.tls.reload()
        if self.installed is not None:
            self.installed()

    def _fall_back(self) -> None:
        info = certificate_info(self.tls.cert_path)
        if info.not_after <= datetime.datetime.now(datetime.timezone.utc):
            # Expired: a fresh self-signed certificate beats one every client refuses outright.
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.tls.cert_path.replace(self.tls.cert_path.with_name(f"{self.tls.cert_path.name}.expired-{stamp}"))
            self.tls.key_path.replace(self.tls.key_path.with_name(f"{self.tls.key_path.name}.expired-{stamp}"))
            ensure_certificate(self.tls.cert_path, self.tls.key_path, self.names[0])
            self._reload()
            info = certificate_info(self.tls.cert_path)
        kind = "a SELF-SIGNED certificate (mail clients will warn)" if info.self_signed else "the current certificate"
        log.warning("!!! ACME: no certificate for %s from %s: %s. Serving %s until %s; trying again in %s.",
                    ", ".join(self.names), self.config.directory, self.last_error, kind,
                    info.not_after.date().isoformat(), _duration(self.config.retry_interval))

    def state(self) -> dict:
        """For ``kotakpos status``: the certificate and the last ACME outcome."""
        info = certificate_info(self.tls.cert_path)
        return {"names": self.names, "directory": self.config.directory, "self_signed": info.self_signed,
                "issuer": info.issuer, "not_after": info.not_after.isoformat(), "last_error": self.last_error,
                "renews_from": (info.not_after - datetime.timedelta(days=self.config.renew_days)).isoformat()}


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"
