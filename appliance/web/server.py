"""The HTTP and HTTPS listeners (stdlib http.server, a thread per request).

Routes (GET unless noted; DOMAIN must be one of ours, else 404):

    /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=A   Thunderbird (domain of A, or of Host)
    /mail/config-v1.1.xml                                          Thunderbird at Host autoconfig.DOMAIN
    POST /autodiscover/autodiscover.xml                            Outlook (any case of the path)
    /mobileconfig?email=A                                          Apple profile for A
    /.well-known/mta-sts.txt                                       MTA-STS policy (Host mta-sts.DOMAIN)
    /.well-known/acme-challenge/TOKEN                              ACME HTTP-01 (RFC 8555 §8.3), HTTP only

Without [web] enabled the listener runs only for ACME and answers nothing but challenges.

Any address of a local domain gets settings, whether or not the user exists, so the
listener tells strangers nothing about who has mail here. TLS handshakes happen in the
request's thread, never in the accepting one, so a silent client cannot stall others.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from appliance.web import documents
from appliance.web.documents import BadRequest, Settings

log = logging.getLogger("kotakpos.web")

REQUEST_TIMEOUT = 30.0
ACME_PREFIX = "/.well-known/acme-challenge/"
MAX_CLIENTS = 64   # connections served at once per listening socket


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, handler, web: "WebListener", tls: Callable[[], ssl.SSLContext] | None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.web = web
        self.tls = tls
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, handler, bind_and_activate=False)
        if self.address_family == socket.AF_INET6 and address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise

    def process_request(self, request, client_address):
        # Bounded like every other listener: past MAX_CLIENTS a new connection is closed at once.
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            self._serve_one(request, client_address)
        finally:
            self.slots.release()

    def _serve_one(self, request, client_address):
        if self.tls is not None:
            request.settimeout(REQUEST_TIMEOUT)
            try:
                request = self.tls().wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as e:
                log.debug("TLS handshake with %s failed: %s", client_address[0], e)
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    server_version = "Kotakpos"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
        log.debug("%s %s", self.client_address[0], format % args)

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8", extra=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _host(self) -> str:
        return (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower().rstrip(".")

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path.lower()
        web = self.server.web
        if url.path.startswith(ACME_PREFIX) and web.challenges is not None and self.server.tls is None:
            authorization = web.challenges.get(url.path[len(ACME_PREFIX):])
            if authorization is None:
                return self._send(404, b"no such challenge\n")
            return self._send(200, authorization.encode("ascii"), "application/octet-stream")
        if not web.setup_pages:
            return self._send(404, b"not found\n")
        if path in ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"):
            address = (query.get("emailaddress") or [""])[0]
            domain = address.rpartition("@")[2].lower() if "@" in address else _strip(self._host(), "autoconfig.")
            if not web.is_local(domain):
                return self._send(404, b"no such domain\n")
            return self._send(200, documents.autoconfig(web.settings, domain), "application/xml; charset=utf-8")
        if path == "/mobileconfig":
            address = (query.get("email") or [""])[0].strip()
            if not web.is_local(address.rpartition("@")[2].lower()):
                return self._send(404, b"no such address\n")
            return self._send(200, documents.mobileconfig(web.settings, address), "application/x-apple-aspen-config",
                              [("Content-Disposition", 'attachment; filename="mail.mobileconfig"')])
        if path == "/.well-known/mta-sts.txt":
            host = self._host()
            if host.startswith("mta-sts.") and not web.is_local(_strip(host, "mta-sts.")):
                return self._send(404, b"no such domain\n")
            return self._send(200, documents.mta_sts_policy(web.settings))
        self._send(404, b"not found\n")

    do_HEAD = do_GET

    def do_POST(self):
        if not self.server.web.setup_pages or urlsplit(self.path).path.lower() != "/autodiscover/autodiscover.xml":
            return self._send(404, b"not found\n")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= documents.MAX_REQUEST:
                raise BadRequest("bad length")
            address = documents.autodiscover_address(self.rfile.read(length))
        except (BadRequest, ValueError):
            return self._send(400, b"bad request\n")
        if not self.server.web.is_local(address.rpartition("@")[2].lower()):
            return self._send(404, b"no such address\n")
        self._send(200, documents.autodiscover(self.server.web.settings, address), "application/xml; charset=utf-8")


def _strip(host: str, prefix: str) -> str:
    return host[len(prefix):] if host.startswith(prefix) else host


class WebListener:
    """The HTTP and HTTPS servers on every listen address (no HTTPS when ``https_port`` is None);
    ``start()`` raises OSError if a port is taken."""

    def __init__(self, listen: list[str], http_port: int, https_port: int | None, tls: Callable[[], ssl.SSLContext],
                 settings: Settings, is_local: Callable[[str], bool], setup_pages: bool = True, challenges=None):
        self.settings = settings
        self.is_local = is_local
        self.setup_pages = setup_pages   # False: only ACME challenges ([acme] on, [web] off)
        self.challenges = challenges     # appliance.acme.issuer.Challenges, or None without ACME
        self._plan = [(host or "::", port, context) for host in listen
                      for port, context in ((http_port, None), (https_port, tls)) if port is not None]
        self.servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        try:
            for host, port, context in self._plan:
                self.servers.append(_Server((host, port), Handler, self, context))
        except OSError:
            self.stop()
            raise
        for server in self.servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                      name="web", daemon=True)
            thread.start()
            self._threads.append(thread)

    def port(self, scheme: str) -> int:
        """The bound port of the first HTTP or HTTPS server (for tests on port 0)."""
        wanted = scheme == "https"
        return next(s.server_address[1] for s in self.servers if (s.tls is not None) == wanted)

    def stop(self) -> None:
        for server in self.servers:
            if self._threads:
                server.shutdown()
            server.server_close()
        self.servers = []
        self._threads = []
