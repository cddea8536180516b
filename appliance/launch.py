"""The ``kotakpos`` command's first step: what must happen before any of its imports.

``kotakpos serve`` runs itself again in the same process (``execve``: same pid, same
arguments) with glibc's per-thread cache of freed blocks turned off, a setting glibc reads
only from the environment at a program's start (docs/ARCHITECTURE.md, "Processes and
threads"). Everything the first image imported is thrown away by the exec, so it happens
here, before click, the server and its libraries are imported: the console script
(``appliance.launch:main``), ``python -m appliance`` and the frozen binary
(``appliance/__main__.py``) all start here. Only the standard library's ``os`` and ``sys``.
"""

from __future__ import annotations

import os
import sys

# glibc's per-thread cache keeps the last 7 freed blocks of each size up to 1 KiB for its own
# thread: an idle session's thread holds tens of KiB it filled while logging in (net/listener.py).
MALLOC_TUNABLE = "glibc.malloc.tcache_count"
MALLOC_TUNABLES = f"{MALLOC_TUNABLE}=0"
# The options of the ``kotakpos`` group that take a value (cli: data_option, config_option).
GROUP_OPTIONS_WITH_VALUE = frozenset({"--data", "--config"})


def subcommand(args: list[str]) -> str | None:
    """The subcommand ``kotakpos args`` runs (None: none given)."""
    words = iter(args)
    for word in words:
        if word in GROUP_OPTIONS_WITH_VALUE:
            next(words, None)
        elif word == "--":
            return next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def restart_with_malloc_tunables() -> None:
    """Run this program again in this process (same pid, same arguments) with MALLOC_TUNABLES.

    Nothing happens when the variable already holds the tunable (the second time round, or
    set by the systemd unit) or off glibc.

    In the one-file binary this process is the child its unpacking bootloader started, and
    ``sys.executable`` is the binary: run again with the environment that parent gave it,
    the bootloader knows it is that child and uses the files already unpacked (no second
    unpacking, no third process); the parent still waits for this pid and forwards signals
    to it, and removes the unpacked files when it ends.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if MALLOC_TUNABLE in tunables or not _glibc():
        return
    env = dict(os.environ, GLIBC_TUNABLES=f"{tunables}:{MALLOC_TUNABLES}" if tunables else MALLOC_TUNABLES)
    # the interpreter's own options (-m appliance, -X ...) are in orig_argv; the binary has none
    args = sys.argv[1:] if getattr(sys, "frozen", False) else sys.orig_argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *args], env)


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):  # a libc that does not know the name (musl)
        return False


def main() -> None:
    """The ``kotakpos`` command."""
    if subcommand(sys.argv[1:]) == "serve":
        restart_with_malloc_tunables()
    from appliance.cli import main as cli  # after the exec: the image that serves imports it once

    cli()
