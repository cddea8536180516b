"""IMAP command classes, one module per state in which they are legal (RFC 3501 §6).

Each class has ``VERB`` (the wire verb, "UID FETCH" for UID forms) and a
``parse(tag, cursor)`` classmethod that reads the arguments after the verb.
``COMMANDS`` maps every verb to its class, built once at import.
"""

from __future__ import annotations

from appliance.imap.commands import any as any_state
from appliance.imap.commands import auth, nonauth, selected, sorting
from appliance.imap.commands.base import Command

COMMANDS: dict[str, type[Command]] = {
    cls.VERB: cls
    for module in (any_state, nonauth, auth, selected, sorting)
    for cls in module.COMMANDS
}

__all__ = ["COMMANDS", "Command"]
