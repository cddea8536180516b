"""Delivery errors: every failure is either temporary (retry later) or permanent (bounce).

The queue decides retries from that class alone; an error nobody classified counts as
temporary, so a surprise never bounces mail that might still have gone out.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A failure that applies to every recipient of an attempt (DNS, connection, TLS)."""

    def __init__(self, status: str, text: str, permanent: bool = False):
        super().__init__(f"{status} {text}")
        self.status = status        # RFC 3463 enhanced status code, e.g. "4.4.1"
        self.text = text            # what the log and the DSN's Diagnostic-Code say
        self.permanent = permanent  # True only when retrying cannot help


def temporary(status: str, text: str) -> DeliveryError:
    return DeliveryError(status, text, permanent=False)


def permanent(status: str, text: str) -> DeliveryError:
    return DeliveryError(status, text, permanent=True)
