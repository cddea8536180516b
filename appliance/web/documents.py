"""The documents the web listener serves, built from the server's settings.

``Settings`` says where each protocol listens; every builder is a pure function of it and
the user's address or domain. Clients get only implicit-TLS or STARTTLS endpoints: this
server never takes passwords in clear text from the internet.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

# Outlook's Autodiscover schemas (MS-OXDSCLI §2.2.4).
AUTODISCOVER_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MAX_REQUEST = 64 * 1024


class BadRequest(Exception):
    """A request the listener answers with 400."""


@dataclass(frozen=True)
class Settings:
    hostname: str                # the name clients connect to (and the certificate names)
    ports: dict[str, int]        # listener name (imaps, imap, pop3s, pop3, smtps, submission) -> port
    mta_sts_mode: str = "testing"
    mta_sts_max_age: int = 604800

    def __post_init__(self):
        # RFC 8461 §3.2: the only modes, and max_age at most a year.
        if self.mta_sts_mode not in ("enforce", "testing", "none"):
            raise ValueError(f"web.mta_sts_mode must be enforce, testing or none, not {self.mta_sts_mode!r}")
        if not 0 <= self.mta_sts_max_age <= 31557600:
            raise ValueError("web.mta_sts_max_age must be between 0 and 31557600 seconds")


def _sub(parent: ET.Element, tag: str, text: str | int | None = None, **attrs) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = str(text)
    return element


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def autoconfig(settings: Settings, domain: str) -> bytes:
    """Thunderbird's config-v1.1.xml (the Mozilla autoconfig format) for a domain."""
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider", id=domain)
    _sub(provider, "domain", domain)
    _sub(provider, "displayName", f"{domain} mail")
    _sub(provider, "displayShortName", domain)
    servers = [("incomingServer", "imap", "imaps", "SSL"), ("incomingServer", "imap", "imap", "STARTTLS"),
               ("incomingServer", "pop3", "pop3s", "SSL"), ("incomingServer", "pop3", "pop3", "STARTTLS"),
               ("outgoingServer", "smtp", "smtps", "SSL"), ("outgoingServer", "smtp", "submission", "STARTTLS")]
    for tag, kind, listener, socket_type in servers:
        server = _sub(provider, tag, type=kind)
        _sub(server, "hostname", settings.hostname)
        _sub(server, "port", settings.ports[listener])
        _sub(server, "socketType", socket_type)
        _sub(server, "authentication", "password-cleartext")  # inside TLS only, see socketType
        _sub(server, "username", "%EMAILADDRESS%")
    return _xml(root)


def autodiscover_address(body: bytes) -> str:
    """The EMailAddress of an Outlook Autodiscover request (POST body)."""
    if len(body) > MAX_REQUEST or b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise BadRequest("refused request body")  # no DTDs: no entity expansion tricks
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise BadRequest("not XML") from None
    for element in root.iter():
        if element.tag.rpartition("}")[2] == "EMailAddress" and element.text and "@" in element.text:
            return element.text.strip()
    raise BadRequest("no EMailAddress")


def autodiscover(settings: Settings, address: str) -> bytes:
    """Outlook's POX Autodiscover answer: IMAP over TLS and SMTP submission over TLS."""
    ET.register_namespace("", AUTODISCOVER_RESPONSE)
    root = ET.Element(f"{{{AUTODISCOVER_RESPONSE}}}Autodiscover")
    response = _sub(root, f"{{{OUTLOOK_RESPONSE}}}Response")
    account = _sub(response, f"{{{OUTLOOK_RESPONSE}}}Account")
    _sub(account, f"{{{OUTLOOK_RESPONSE}}}AccountType", "email")
    _sub(account, f"{{{OUTLOOK_RESPONSE}}}Action", "settings")
    for kind, listener in (("IMAP", "imaps"), ("POP3", "pop3s"), ("SMTP", "smtps")):
        protocol = _sub(account, f"{{{OUTLOOK_RESPONSE}}}Protocol")
        for name, value in (("Type", kind), ("Server", settings.hostname), ("Port", settings.ports[listener]),
                            ("LoginName", address), ("DomainRequired", "off"), ("SPA", "off"), ("SSL", "on"),
                            ("AuthRequired", "on")):
            _sub(protocol, f"{{{OUTLOOK_RESPONSE}}}{name}", value)
    return _xml(root)


def mobileconfig(settings: Settings, address: str) -> bytes:
    """An Apple configuration profile (unsigned) with one IMAP account; stable UUIDs per address."""
    account_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kotakpos:mail:{settings.hostname}:{address}")).upper()
    profile_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kotakpos:profile:{settings.hostname}:{address}")).upper()
    reverse = ".".join(reversed(settings.hostname.split(".")))
    account = {
        "PayloadType": "com.apple.mail.managed", "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.mail.{account_uuid}", "PayloadUUID": account_uuid,
        "PayloadDisplayName": address,
        "EmailAccountDescription": address, "EmailAccountType": "EmailTypeIMAP", "EmailAddress": address,
        "IncomingMailServerHostName": settings.hostname, "IncomingMailServerPortNumber": settings.ports["imaps"],
        "IncomingMailServerUseSSL": True, "IncomingMailServerUsername": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": settings.hostname, "OutgoingMailServerPortNumber": settings.ports["smtps"],
        "OutgoingMailServerUseSSL": True, "OutgoingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword", "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration", "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.profile.{profile_uuid}", "PayloadUUID": profile_uuid,
        "PayloadDisplayName": f"Mail for {address}", "PayloadContent": [account],
    }
    return plistlib.dumps(profile)


def mta_sts_policy(settings: Settings) -> bytes:
    """RFC 8461 §3.2: the policy text; this server is the domain's MX."""
    lines = ["version: STSv1", f"mode: {settings.mta_sts_mode}", f"mx: {settings.hostname}",
             f"max_age: {settings.mta_sts_max_age}"]
    return "".join(line + "\r\n" for line in lines).encode("ascii")
