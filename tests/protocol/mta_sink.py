"""A receiving MTA for outbound tests: aiosmtpd on an ephemeral loopback port.

``Sink()`` accepts everything and records each message; ``data_replies`` scripts the
answers to DATA one message at a time ("451 ..." twice, then the default 250),
``rcpt_replies`` refuses chosen recipients, ``stall`` makes DATA hang. ``tls_context``
offers STARTTLS; with ``require_tls`` and ``login`` it is a smarthost that requires
STARTTLS and AUTH.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    mail_options: list[str]
    tls: bool
    login: str | None


@dataclass
class _Handler:
    sink: "Sink"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.sink.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        sink.at_once += 1
        sink.most_at_once = max(sink.most_at_once, sink.at_once)
        try:
            if sink.stall:
                await asyncio.sleep(sink.stall)
        finally:
            sink.at_once -= 1
        with sink.lock:
            reply = sink.data_replies.pop(0) if sink.data_replies else None
            if reply is None:
                sink.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                                              list(envelope.mail_options), session.ssl is not None,
                                              session.auth_data.login.decode() if session.authenticated else None))
            sink.data_attempts += 1
            sink.changed.notify_all()
        return reply or "250 2.0.0 OK queued"


@dataclass
class Sink:
    data_replies: list = field(default_factory=list)   # answers to DATA, in order; then 250
    rcpt_replies: dict = field(default_factory=dict)   # address -> refusal
    stall: float = 0.0                                  # seconds to sit on each DATA
    tls_context: object = None                         # ssl.SSLContext: offer STARTTLS
    require_tls: bool = False                          # refuse mail before STARTTLS
    login: tuple[str, str] | None = None               # require AUTH with these credentials
    messages: list[Received] = field(default_factory=list)
    data_attempts: int = 0
    at_once: int = 0        # DATA commands being answered right now (all on the sink's one loop)
    most_at_once: int = 0   # the highest at_once seen

    def __post_init__(self):
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self):
        def factory():
            kwargs = {}
            if self.tls_context is not None:
                kwargs.update(tls_context=self.tls_context, require_starttls=self.require_tls)
            if self.login is not None:
                kwargs.update(authenticator=self._authenticate, auth_required=True)
            return SMTP(_Handler(self), hostname="sink.test", enable_SMTPUTF8=True, **kwargs)
        return await self.loop.create_server(factory, host="127.0.0.1", port=0)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    @property
    def route(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Block until ``count`` messages arrived (or fail)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"sink got {len(self.messages)} message(s), expected {count}")
                self.changed.wait(left)
            return list(self.messages)

    def close(self):
        if not self._thread.is_alive():
            return  # closed before
        async def shut():
            self._server.close()  # on the loop's own thread: asyncio servers are not thread-safe
        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
