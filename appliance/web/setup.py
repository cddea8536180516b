"""The set-up routes: mail client settings, the MTA-STS policy, ACME HTTP-01 challenges.

Routes (GET and HEAD unless noted; DOMAIN must be one of ours, else 404):

    /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=A   Thunderbird (domain of A, or of Host)
    /mail/config-v1.1.xml                                          Thunderbird at Host autoconfig.DOMAIN
    POST /autodiscover/autodiscover.xml                            Outlook (any case of the path)
    /mobileconfig?email=A                                          Apple profile for A
    /.well-known/mta-sts.txt                                       MTA-STS policy (Host mta-sts.DOMAIN)
    /.well-known/acme-challenge/TOKEN                              ACME HTTP-01 (RFC 8555 §8.3), HTTP only

Any address of a local domain gets settings, whether or not the user exists, so the
listener tells strangers nothing about who has mail here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.web import documents
from appliance.web.documents import BadRequest, Settings

ACME_PREFIX = "/.well-known/acme-challenge/"
AUTODISCOVER_PATH = "/autodiscover/autodiscover.xml"
XML = "application/xml; charset=utf-8"


@dataclass(frozen=True)
class SetupSite:
    settings: Settings
    is_local: Callable[[str], bool]   # is this domain one of ours?


def text(status: int, body: bytes, media_type: str = "text/plain; charset=utf-8", headers=None) -> Response:
    return Response(body, status, {"Cache-Control": "no-store", **(headers or {})}, media_type)


def host_of(request: Request) -> str:
    return (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower().rstrip(".")


def _strip(host: str, prefix: str) -> str:
    return host[len(prefix):] if host.startswith(prefix) else host


def setup_routes(site: SetupSite) -> list[Route]:
    def autoconfig(request: Request) -> Response:
        address = request.query_params.get("emailaddress", "")
        domain = address.rpartition("@")[2].lower() if "@" in address else _strip(host_of(request), "autoconfig.")
        if not site.is_local(domain):
            return text(404, b"no such domain\n")
        return text(200, documents.autoconfig(site.settings, domain), XML)

    def mobileconfig(request: Request) -> Response:
        address = request.query_params.get("email", "").strip()
        if not site.is_local(address.rpartition("@")[2].lower()):
            return text(404, b"no such address\n")
        return text(200, documents.mobileconfig(site.settings, address), "application/x-apple-aspen-config",
                    {"Content-Disposition": 'attachment; filename="mail.mobileconfig"'})

    def mta_sts(request: Request) -> Response:
        host = host_of(request)
        if host.startswith("mta-sts.") and not site.is_local(_strip(host, "mta-sts.")):
            return text(404, b"no such domain\n")
        return text(200, documents.mta_sts_policy(site.settings))

    async def autodiscover(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > documents.MAX_REQUEST:
                return text(400, b"bad request\n")
        try:
            address = documents.autodiscover_address(body)
        except BadRequest:
            return text(400, b"bad request\n")
        if not site.is_local(address.rpartition("@")[2].lower()):
            return text(404, b"no such address\n")
        return text(200, documents.autodiscover(site.settings, address), XML)

    return [
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", autoconfig),
        Route("/mail/config-v1.1.xml", autoconfig),
        Route("/mobileconfig", mobileconfig),
        Route("/.well-known/mta-sts.txt", mta_sts),
        Route(AUTODISCOVER_PATH, autodiscover, methods=["POST"]),
    ]


def acme_routes(challenges) -> list[Route]:
    """HTTP-01 answers (RFC 8555 §8.3): the key authorization of a pending challenge."""
    def challenge(request: Request) -> Response:
        authorization = challenges.get(request.path_params["token"])
        if authorization is None:
            return text(404, b"no such challenge\n")
        return text(200, authorization.encode("ascii"), "application/octet-stream")

    return [Route(ACME_PREFIX + "{token}", challenge)]


class CaseInsensitivePaths:
    """ASGI middleware: the set-up paths answer in any case (Outlook asks for Autodiscover in several)."""

    def __init__(self, app, paths: frozenset[str]):
        self.app = app
        self.paths = paths

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].lower() in self.paths:
            scope = {**scope, "path": scope["path"].lower()}
        await self.app(scope, receive, send)
