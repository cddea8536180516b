"""TUI test helpers: the app over a live server (in-process or over the admin socket)."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from appliance.server import ADMIN_SOCKET
from appliance.tui.app import attach, in_process
from tests.conftest import RunningServer, test_config

DOMAIN = "example.org"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run ``async def`` tests here in a fresh event loop (Textual's Pilot is async)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


@pytest.fixture(scope="module")
def office(tmp_path_factory, _certificate):
    """A running server with the domain example.org, shared by a module's tests (a server
    takes seconds to stop): tests use their own addresses and find their own rows."""
    folder = tmp_path_factory.mktemp("office")
    (folder / "tls").mkdir()
    for source, name in zip(_certificate, ("cert.pem", "key.pem")):
        (folder / "tls" / name).write_bytes(source.read_bytes())
    (folder / "tls" / "key.pem").chmod(0o600)
    running = RunningServer(folder, test_config())
    running.store.add_domain(DOMAIN)
    stop_relay(running)
    yield running
    running.stop()


def stop_relay(running) -> None:
    """Stop the outbound queue runner, so queue rows stay as a test made them."""
    if running.server.mta is not None:
        running.server.mta.stop(0)


@pytest.fixture(params=["in-process", "socket"])
def tui_app(request, office):
    """The TUI attached to ``office``, both ways the CLI runs it."""
    if request.param == "in-process":
        return in_process(office.server.admin)
    return attach(office.data_dir / ADMIN_SOCKET)


async def wait_for(pilot, condition, timeout: float = 3.0, what="the condition"):
    """Let the app run until ``condition()`` is true; fail after ``timeout`` seconds.

    ``what`` names the wait in the failure, or is a callable that describes what there is.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        await pilot.pause(0.05)


def table_keys(table) -> set[str]:
    return {row.key.value for row in table.ordered_rows}


def session_key(table, client) -> str | None:
    """The sessions-table row of a test client's connection, found by its port."""
    peer = f"127.0.0.1:{client.getsockname()[1]}"
    return next((row.key.value for row in table.ordered_rows if table.get_row(row.key)[2] == peer), None)
