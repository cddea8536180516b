"""The two ASGI applications: what answers on HTTP and what answers on HTTPS.

HTTP answers ACME challenges (only there: RFC 8555 §8.3 fetches them over port 80), the
set-up documents, and sends a browser asking for the account page to HTTPS. HTTPS answers
the set-up documents and the account page.
"""

from __future__ import annotations

from typing import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from appliance.web.setup import CaseInsensitivePaths, SetupSite, acme_routes, host_of, setup_routes


def _lower_paths(routes: list[Route]) -> frozenset[str]:
    return frozenset(route.path.lower() for route in routes if "{" not in route.path)


def http_app(site: SetupSite | None, challenges=None, https_port: Callable[[], int] | None = None):
    """``site`` None: only ACME challenges ([acme] on, [web] off). ``https_port()``: where
    the account page is (the bound port, known once the listener started)."""
    routes = acme_routes(challenges) if challenges is not None else []
    setup = setup_routes(site) if site is not None else []
    routes += setup
    if https_port is not None:
        def to_https(request: Request) -> RedirectResponse:
            host = host_of(request)
            host = f"[{host}]" if ":" in host else host
            port = "" if https_port() == 443 else f":{https_port()}"
            return RedirectResponse(f"https://{host}{port}{request.url.path}", 301)
        routes += [Route("/", to_https), Route("/account", to_https)]
    return CaseInsensitivePaths(Starlette(routes=routes), _lower_paths(setup))


def https_app(site: SetupSite, account_routes: list = ()):
    setup = setup_routes(site)
    return CaseInsensitivePaths(Starlette(routes=[*setup, *account_routes]), _lower_paths(setup))
