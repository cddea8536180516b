"""A second Kotakpos server process on the data folder of a test's server: a stand-in worker.

Run as ``python -m tests.reliability.second_worker DATA_DIR OVERRIDES_JSON``. It starts a
``Server`` on ephemeral ports beside the test's own server, as a worker process of a
multi-process server would: without the data-folder lock (the first server holds it) and
without emptying the shared runtime state. It prints its pid and ports as one JSON line,
then serves until its stdin closes. ``"untrusted_loopback": true`` in the overrides treats
loopback as an internet address (for tests of blocking, which only loopback can reach).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance import server as server_module
from appliance.auth import Authenticator
from tests.conftest import test_config


def main(data_dir: str, overrides: str) -> None:
    sections = json.loads(overrides)
    if sections.pop("untrusted_loopback", False):
        Authenticator.is_trusted = lambda self, ip: False
    server_module.lock_data_folder = lambda folder: None   # the first server holds it
    server_module.reset_runtime = lambda folder: None      # and its shared state is live
    server_module.ADMIN_SOCKET = "admin-second.sock"
    server_module.setup_logging("warning")
    server = server_module.Server(Path(data_dir), test_config(**sections))
    server.start()
    ports = {l.name: l.port for l in server.connections.listeners}
    print(json.dumps({"pid": server_module.os.getpid(), "ports": ports}), flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
