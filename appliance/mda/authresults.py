"""Authentication-Results (RFC 8601): how we write the values we record, and whose a field is.

What we record has more readers than us: the user's mail client, a later hop, and the
ARC-Authentication-Results we seal when we forward (dkimpy rebuilds that from our field
with the authres package, which writes any value holding "@" as it finds it). A value
taken from the message or the session (a From domain, the HELO name, MAIL FROM, a DKIM
d=) is therefore written only in a form no reader can split into further results: no
";", parenthesis, quote or space in it can end our result early or add another.
"""

from __future__ import annotations

import re

from appliance import mime

# RFC 5322 §3.2.3 atext (with RFC 6532's UTF-8) for a local part; for a domain, letters,
# digits, ".", "-" and "_": none of them means anything to an RFC 8601 parser
_DOMAIN = r"[A-Za-z0-9._\-\u0080-\U0010ffff]+"
_PLAIN_DOMAIN = re.compile(_DOMAIN)
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\u0080-\U0010ffff]+@" + _DOMAIN)
_COMMENT_SPECIALS = re.compile(r"([()\\])")


def pvalue(text: str) -> str:
    """``text`` as an RFC 8601 §2.2 pvalue: a plain address or domain as it is; else the part
    after its last "@" (a quoted local part tells a reader nothing the domain does not),
    and that, if it is still not plain, as a quoted-string."""
    if _PLAIN_ADDRESS.fullmatch(text) or _PLAIN_DOMAIN.fullmatch(text):
        return text
    text = text.rpartition("@")[2]
    if _PLAIN_DOMAIN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def comment(text: str) -> str:
    """``text`` as an RFC 5322 §3.2.2 comment: its parentheses and backslashes escaped."""
    return "(" + _COMMENT_SPECIALS.sub(r"\\\1", text) + ")"


def authserv_id(value: bytes) -> str:
    """Whose results an Authentication-Results value holds (RFC 8601 §2.2 authserv-id), as
    a reader may take it: after comments, unquoted, without a version, lower case, no
    trailing dot."""
    return mime.headers.leading_value(value.decode("latin-1")).lower().rstrip(".")
