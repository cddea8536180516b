"""Connections: listeners, TLS, the line reader with its limits, the live session registry.

This package knows sockets and bytes, never a protocol's commands. A protocol session
receives a ``Connection`` and reads lines, blocks and literals through it; the limits
(line length, data size, idle time, connections per address, total connections) are
enforced here so every protocol gets them the same way.
"""

from appliance.net.conn import Connection, ConnectionClosed, IdleTimeout, LineTooLong
from appliance.net.listener import BindError, ConnectionServer
from appliance.net.registry import SessionInfo, SessionRegistry

__all__ = ["Connection", "ConnectionClosed", "IdleTimeout", "LineTooLong", "BindError", "ConnectionServer",
           "SessionInfo", "SessionRegistry"]
