"""The account page: each user changes their own password, app passwords, two-step sign-in,
sees their usage, sets up a device and, if they know Sieve, edits their own Sieve scripts
(HTTPS only).

Routes (``/`` sends to ``/account``):

    GET  /account                          the page: sign-in form, code form, or the panels
    GET  /account/lang/{en|id}             the language switch (remembered in a cookie)
    POST /account/sign-in                  address, password
    POST /account/second-step              a TOTP or recovery code
    POST /account/sign-out
    POST /account/password                 old, new, repeat
    POST /account/app-passwords            name: a new app password, shown once
    POST /account/app-passwords/revoke     id
    POST /account/totp/start | confirm | off
    POST /account/out-of-office, /account/forwarding, /account/filters[/edit|/move|/delete]   (rules_panels.py)
    POST /account/sieve/save               name, script, new, action (save | check): a Sieve script
    POST /account/sieve/activate           name, on ("1" makes it the active script, "0" leaves none active)
    POST /account/sieve/rename             name, new
    POST /account/sieve/delete             name

Every POST carries the session's CSRF token and answers with a redirect to the page
(post/redirect/get); what a POST has to say (a new app password, recovery codes, an error)
goes to the session's notices and is shown once. Every change is logged with the user and
the client's address, never with a secret. The panels are listed in ``PANELS``: a panel
is one template under ``templates/panels/`` with the handlers its forms post to.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, quote

import jinja2
import segno
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from appliance.auth import Authenticator, totp
from appliance.auth.app_passwords import digest, new_app_password
from appliance.auth.passwords import weakness
from appliance.config.schema import ManagesieveSection
from appliance.mda import rules, scripts
from appliance.mda.account_rules import RuleError
from appliance.store import AlreadyExists, NotFound, QuotaExceeded, ScriptActive
from appliance.web import i18n, rules_panels
from appliance.web.sessions import COOKIE, Sessions, WebSession

log = logging.getLogger("kotakpos.web")

HERE = Path(__file__).parent
MAX_FORM = 16 * 1024        # bytes of a posted form
MAX_DEVICE_NAME = 64
RECOVERY_CODES = 10
PANELS = ("password", "out_of_office", "forwarding", "filters", "sieve", "app_passwords", "totp", "usage",
          "setup")  # templates/panels/NAME.html, in page order
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
                               " frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class AccountSite:
    store: object                          # appliance.store.Store
    auth: Authenticator
    hostname: str                          # server.hostname: what mail programs connect to, what authenticator apps show
    require_app_passwords: Callable[[], bool]   # [auth] require_app_passwords, as reloaded
    vacation_days: Callable[[], int]            # [mda] vacation_days, as reloaded: the out-of-office's default interval
    sessions: Sessions = field(default_factory=Sessions)
    # RFC 6238 §5.2: a code is accepted once. The last step used per user (memory is enough:
    # a code lives 90 seconds at most, less than any restart).
    totp_steps: dict[int, int] = field(default_factory=dict)
    totp_lock: threading.Lock = field(default_factory=threading.Lock)
    # [managesieve] as reloaded: the Sieve editor's limits are ManageSieve's
    managesieve: Callable[[], ManagesieveSection] = ManagesieveSection


class FormRefused(Exception):
    """A POST without a live session or with a wrong CSRF token: 403."""


_templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M") if timestamp else ""


def _qr(text: str) -> str:
    return segno.make(text, error="m").svg_inline(scale=4, dark="#000", light="#fff")


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


# -- the Sieve editor's panel ---------------------------------------------------------------

SIEVE_EXCERPT = 2   # lines shown before and after the line of an error
SIEVE_PLACEHOLDER = 'require "fileinto";\nif header :contains "subject" "invoice" {\n  fileinto "Invoices";\n}'


def _sieve_panel(store, user_id: int, chosen: str | None, draft: dict | None, limits: ManagesieveSection,
                 texts: dict) -> dict:
    """What panels/sieve.html shows: the user's scripts (ManageSieve's), which is active, and
    the editor: the draft of the last check or save if any, else the script chosen by
    ``?script=NAME``, else a new one."""
    listed = store.list_sieve_scripts(user_id)
    names = {s.name for s in listed}
    if draft is not None:
        editor = {"name": draft["name"], "text": draft["text"], "new": draft["new"] or draft["name"] not in names}
    elif chosen in names:
        editor = {"name": chosen, "text": store.get_sieve_script(user_id, chosen), "new": False}
    else:
        editor = {"name": "", "text": "", "new": True}
    error = draft.get("error") if draft else None
    return {"sieve": {
        "scripts": [{"name": s.name, "active": s.active, "size": _size(s.size), "updated": _when(s.updated),
                     "url": f"/account?script={quote(s.name, safe='')}#sieve-editor"} for s in listed],
        "active": next((s.name for s in listed if s.active), None),
        "account_rules": bool(store.get_account_rules(user_id)),
        "limits": texts["sieve_limits"].format(size=_size(limits.max_script_size), count=limits.max_scripts),
        "editor": editor,
        "editor_active": any(s.active and s.name == editor["name"] for s in listed),
        "error": _sieve_error(error, editor["text"], texts) if error else None,
        "warnings": [texts["sieve_warning"].format(**w) for w in (draft or {}).get("warnings", ())],
        "valid": bool(draft and draft.get("valid")),
        "placeholder": SIEVE_PLACEHOLDER,
    }}


def _pop_sieve_draft(session: WebSession) -> dict | None:
    draft, session.sieve_draft = session.sieve_draft, None
    return draft


def _sieve_error(error: dict, text: str, texts: dict) -> dict:
    """The editor's error in words; a parse error also quotes its line with its neighbours,
    the line itself marked."""
    kind = error["kind"]
    if kind == "invalid":
        lines = text.splitlines() or [""]
        at = min(max(error["line"], 1), len(lines))
        excerpt = [{"number": n, "text": lines[n - 1], "bad": n == at}
                   for n in range(max(at - SIEVE_EXCERPT, 1), min(at + SIEVE_EXCERPT, len(lines)) + 1)]
        return {"text": texts["sieve_error_line"].format(line=error["line"], reason=error["reason"]),
                "excerpt": excerpt}
    if kind == "too_big":
        words = texts["sieve_too_big"].format(size=_size(error["size"]), bytes=error["size"],
                                              limit=_size(error["limit"]), limit_bytes=error["limit"])
    elif kind == "too_many":
        words = texts["sieve_too_many"].format(count=error["limit"])
    else:  # "bad_name", "exists"
        words = texts[f"sieve_{kind}"].format(name=error.get("name", ""))
    return {"text": words, "excerpt": []}


def account_routes(site: AccountSite) -> list:
    sessions = site.sessions

    # -- plumbing: sessions, forms, pages -------------------------------------------------

    def language(request: Request) -> str:
        return i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))

    def with_cookie(response: Response, session: WebSession | None) -> Response:
        if session is None:
            response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        else:
            response.set_cookie(COOKIE, session.token, path="/", secure=True, httponly=True, samesite="strict")
        response.headers.update(HEADERS)
        return response

    def to_page(session: WebSession | None) -> Response:
        return with_cookie(RedirectResponse("/account", 303), session)

    def render(request: Request, session: WebSession) -> Response:
        lang = language(request)
        texts = i18n.TEXTS[lang]
        notices = [{**n, "text": texts[n["key"]].format(name=n.get("name", ""))} for n in session.notices]
        session.notices = []
        context = {"t": texts, "lang": lang, "other_lang": "id" if lang == "en" else "en", "csrf": session.csrf,
                   "notices": notices, "address": session.address, "panels": ()}
        if session.user_id is not None:
            context.update(panels=PANELS, **panel_data(request, session, texts),
                           **rules_panels.panel_data(site.store, session.user_id, site.vacation_days()))
            template = "account.html"
        elif session.pending_user_id is not None:
            template = "second_step.html"
        else:
            template = "sign_in.html"
        return with_cookie(HTMLResponse(_templates.get_template(template).render(context)), session)

    def panel_data(request: Request, session: WebSession, texts: dict) -> dict:
        store, user_id = site.store, session.user_id
        user = store.get_user_by_id(user_id)
        folders = []
        for mailbox in store.list_mailboxes(user_id):
            status = store.mailbox_status(mailbox.id)
            folders.append({"name": mailbox.name, "messages": status.messages, "size": _size(status.size)})
        used = _size(store.usage(user_id))
        usage = (texts["quota"].format(used=used, quota=_size(user.quota)) if user.quota
                 else texts["quota_none"].format(used=used))
        base = str(request.base_url).rstrip("/")
        apple = f"{base}/mobileconfig?email={quote(session.address)}"
        enrolment = None
        if session.totp_secret is not None:
            uri = totp.provisioning_uri(session.totp_secret, session.address, site.hostname)
            enrolment = {"key": session.totp_secret, "qr": _qr(uri)}
        return {
            "app_passwords": [{"id": a.id, "name": a.name, "created": _when(a.created), "last_used": _when(a.last_used),
                               "last_ip": a.last_ip or ""} for a in store.app_passwords(user_id)],
            "app_required": site.require_app_passwords(),
            "totp_on": store.totp_secret(user_id) is not None,
            "recovery_left": store.recovery_codes_left(user_id),
            "enrolment": enrolment,
            "usage": usage, "folders": folders,
            "thunderbird": f"{base}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={quote(session.address)}",
            "apple": apple, "apple_qr": _qr(apple), "server": site.hostname,
            **_sieve_panel(store, user_id, request.query_params.get("script"), _pop_sieve_draft(session),
                           site.managesieve(), texts),
        }

    async def read_form(request: Request, limit: int) -> dict[str, str]:
        body = bytearray()   # grows in place: a Sieve script's form may be megabytes
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise FormRefused("form too large")
        try:
            fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
        except ValueError:
            raise FormRefused("too many fields") from None
        return {name: values[0] for name, values in fields.items()}

    def checked(handler, signed_in: bool = True, form_limit: Callable[[], int] = lambda: MAX_FORM):
        """A POST route: a live session, its CSRF token, then ``handler(request, session, form)``
        in a worker thread (it may hash a password or wait for the store). ``form_limit``:
        the largest form body it takes, in bytes."""
        async def endpoint(request: Request) -> Response:
            session = sessions.get(request.cookies.get(COOKIE))
            try:
                form = await read_form(request, form_limit())
                if session is None or not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
                    raise FormRefused("no session or wrong CSRF token")
                if signed_in and session.user_id is None:
                    raise FormRefused("not signed in")
            except FormRefused as e:
                log.info("account page refused a form ip=%s path=%s: %s", _client_ip(request), request.url.path, e)
                lang = language(request)
                page = _templates.get_template("refused.html").render(
                    t=i18n.TEXTS[lang], lang=lang, other_lang="id" if lang == "en" else "en", csrf="", notices=[],
                    panels=())
                return with_cookie(HTMLResponse(page, 403), session)
            return await run_in_threadpool(signed_in_handler if signed_in else handler, request, session, form)

        def signed_in_handler(request: Request, session: WebSession, form: dict) -> Response:
            if site.store.get_user_by_id(session.user_id) is None:   # deleted by the administrator meanwhile
                sessions.end(session)
                return to_page(None)
            return handler(request, session, form)
        return endpoint

    def note(session: WebSession, kind: str, key: str, **values) -> None:
        session.notices.append({"kind": kind, "key": key, **values})

    # -- pages -----------------------------------------------------------------------------

    def page(request: Request) -> Response:
        session = sessions.get(request.cookies.get(COOKIE))
        if session is not None and session.user_id is not None and site.store.get_user_by_id(session.user_id) is None:
            sessions.end(session)   # the administrator deleted the user meanwhile
            session = None
        return render(request, session or sessions.new())

    def switch_language(request: Request) -> Response:
        lang = request.path_params["lang"]
        response = RedirectResponse("/account", 303)
        if lang in i18n.LANGUAGES:
            response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, path="/", secure=True, httponly=True,
                                samesite="lax")
        response.headers.update(HEADERS)
        return response

    # -- signing in and out --------------------------------------------------------------

    def sign_in(request: Request, session: WebSession, form: dict) -> Response:
        ip = _client_ip(request)
        address = form.get("address", "").strip()
        if site.auth.is_blocked(ip):
            note(session, "error", "blocked")
            return to_page(session)
        user = site.auth.login_account_page(address, form.get("password", ""), ip)
        if user is None:
            note(session, "error", "blocked" if site.auth.is_blocked(ip) else "bad_login")
            return to_page(session)
        session = sessions.renew(session)
        session.address = user.address
        if site.store.totp_secret(user.id) is not None:
            session.pending_user_id = user.id
        else:
            session.user_id = user.id
            log.info("account page: %s signed in ip=%s", user.address, ip)
        return to_page(session)

    def second_step(request: Request, session: WebSession, form: dict) -> Response:
        ip = _client_ip(request)
        user_id = session.pending_user_id
        if user_id is None:
            return to_page(session)
        if site.auth.is_blocked(ip):
            note(session, "error", "blocked")
            return to_page(session)
        how = code_accepted(user_id, form.get("code", ""))
        if how is None:
            # A wrong code counts as a failed login: guessing six digits is throttled like a password.
            site.auth.record_failure(ip, session.address, "wrong two-step code", "web")
            note(session, "error", "bad_code")
            return to_page(session)
        session = sessions.renew(session)
        session.pending_user_id, session.user_id = None, user_id
        log.info("account page: %s signed in with %s ip=%s", session.address, how, ip)
        return to_page(session)

    def code_accepted(user_id: int, code: str) -> str | None:
        """"a TOTP code" or "a recovery code" if ``code`` is either (each used once), else None."""
        secret = site.store.totp_secret(user_id)
        if secret is None:
            return None
        step = totp.matching_step(secret, code)
        if step is not None:
            with site.totp_lock:
                if site.totp_steps.get(user_id, -1) >= step:
                    return None
                site.totp_steps[user_id] = step
            return "a TOTP code"
        if code.strip() and site.store.use_recovery_code(user_id, digest(code)):
            return "a recovery code"
        return None

    def sign_out(request: Request, session: WebSession, form: dict) -> Response:
        sessions.end(session)
        log.info("account page: %s signed out ip=%s", session.address, _client_ip(request))
        return to_page(None)

    # -- password ------------------------------------------------------------------------

    def change_password(request: Request, session: WebSession, form: dict) -> Response:
        ip = _client_ip(request)
        new = form.get("new", "")
        if site.auth.login_account_page(session.address, form.get("old", ""), ip) is None:
            note(session, "error", "wrong_old")
        elif new != form.get("repeat", ""):
            note(session, "error", "no_match")
        elif (reason := weakness(session.address, new)) is not None:
            note(session, "error", reason)
            log.info("account page: %s chose a new password that was refused (%s) ip=%s", session.address, reason, ip)
        else:
            site.store.set_password(session.address, new)
            sessions.end_user(session.user_id, keep=session)
            note(session, "ok", "password_changed")
            log.info("account page: %s changed their password ip=%s", session.address, ip)
        return to_page(session)

    # -- app passwords -------------------------------------------------------------------

    def create_app_password(request: Request, session: WebSession, form: dict) -> Response:
        name = " ".join(form.get("name", "").split())[:MAX_DEVICE_NAME] or "?"
        password = new_app_password()
        created = site.store.add_app_password(session.user_id, name, digest(password))
        note(session, "secret", "app_created", name=name, secret=password)
        log.info("account page: %s created app password %d (%s) ip=%s", session.address, created.id, name,
                 _client_ip(request))
        return to_page(session)

    def revoke_app_password(request: Request, session: WebSession, form: dict) -> Response:
        try:
            app_password_id = int(form.get("id", ""))
        except ValueError:
            return to_page(session)
        if site.store.revoke_app_password(session.user_id, app_password_id):
            note(session, "ok", "app_revoked")
            log.info("account page: %s revoked app password %d ip=%s", session.address, app_password_id,
                     _client_ip(request))
        return to_page(session)

    # -- two-step sign-in ----------------------------------------------------------------

    def totp_start(request: Request, session: WebSession, form: dict) -> Response:
        session.totp_secret = totp.new_secret()
        return to_page(session)

    def totp_confirm(request: Request, session: WebSession, form: dict) -> Response:
        secret = session.totp_secret
        step = totp.matching_step(secret, form.get("code", "")) if secret else None
        if step is None:
            note(session, "error", "bad_code")
            return to_page(session)
        codes = [f"{secrets.randbelow(10 ** 10):010d}" for _ in range(RECOVERY_CODES)]
        site.store.enable_totp(session.user_id, secret, [digest(c) for c in codes])
        with site.totp_lock:
            site.totp_steps[session.user_id] = step
        session.totp_secret = None
        note(session, "codes", "totp_enabled", codes=codes)
        log.info("account page: %s turned two-step sign-in on ip=%s", session.address, _client_ip(request))
        return to_page(session)

    def totp_off(request: Request, session: WebSession, form: dict) -> Response:
        if code_accepted(session.user_id, form.get("code", "")) is None:
            note(session, "error", "bad_code")
            return to_page(session)
        site.store.disable_totp(session.user_id)
        note(session, "ok", "totp_disabled")
        log.info("account page: %s turned two-step sign-in off ip=%s", session.address, _client_ip(request))
        return to_page(session)

    # -- out of office, forwarding, filters (rules_panels.py) ------------------------------

    def rules_form(apply, done: str):
        def handler(request: Request, session: WebSession, form: dict) -> Response:
            user = site.store.get_user_by_id(session.user_id)
            try:
                what = rules_panels.save(site.store, user.id, apply(site.store, user, form, site.vacation_days()))
            except RuleError as e:
                note(session, "error", e.key, name=e.name)
                return to_page(session)
            note(session, "ok", done)
            log.info("account page: %s %s ip=%s", user.address, what, _client_ip(request))
            return to_page(session)
        return handler

    # -- Sieve scripts: the raw editor --------------------------------------------------
    # The scripts ManageSieve keeps, checked by the same function (mda.scripts) within the
    # same [managesieve] limits; each answer goes back to the editor.

    def to_editor(session: WebSession, name: str = "") -> Response:
        where = "/account" + (f"?script={quote(name, safe='')}" if name else "") + "#sieve-editor"
        return with_cookie(RedirectResponse(where, 303), session)

    def sieve_form_limit() -> int:
        # A form encodes each byte of the script in at most three ("%E2"), plus the other fields.
        return 3 * site.managesieve().max_script_size + MAX_FORM

    def sieve_save(request: Request, session: WebSession, form: dict) -> Response:
        limits = site.managesieve()
        name, text, new = form.get("name", ""), form.get("script", ""), form.get("new") == "1"
        session.sieve_draft = draft = {"name": name, "text": text, "new": new}
        try:
            name = scripts.checked_name(name)
            text, commands = scripts.checked_script(text, limits.max_script_size)
        except scripts.BadName:
            draft["error"] = {"kind": "bad_name"}
        except scripts.TooBig as e:
            draft["error"] = {"kind": "too_big", "size": e.size, "limit": e.limit}
        except scripts.Invalid as e:
            draft["error"] = {"kind": "invalid", "line": e.line, "reason": e.reason}
        if "error" in draft:
            note(session, "error", "sieve_not_saved")
            return to_editor(session)
        draft["warnings"] = [{"line": f.line, "folder": f.folder}
                             for f in rules.missing_folders(site.store, session.user_id, commands)]
        if form.get("action") == "check":
            draft["valid"] = True
            note(session, "ok", "sieve_valid")
            return to_editor(session)
        if new and any(s.name == name for s in site.store.list_sieve_scripts(session.user_id)):
            draft["error"] = {"kind": "exists", "name": name}
            note(session, "error", "sieve_not_saved")
            return to_editor(session)
        try:
            site.store.put_sieve_script(session.user_id, name, text, limits.max_scripts)
        except QuotaExceeded:
            draft["error"] = {"kind": "too_many", "limit": limits.max_scripts}
            note(session, "error", "sieve_not_saved")
            return to_editor(session)
        draft["new"] = False
        note(session, "ok", "sieve_saved", name=name)
        log.info("account page: %s stored Sieve script %r (%d octets) ip=%s", session.address, name,
                 len(text.encode()), _client_ip(request))
        return to_editor(session, name)

    def sieve_activate(request: Request, session: WebSession, form: dict) -> Response:
        name, on = form.get("name", ""), form.get("on") == "1"
        try:
            site.store.activate_sieve_script(session.user_id, name if on else None)
        except NotFound:
            note(session, "error", "sieve_gone", name=name)
            return to_editor(session)
        note(session, "ok", "sieve_activated" if on else "sieve_deactivated", name=name)
        log.info("account page: %s %s Sieve script %r ip=%s", session.address, "activated" if on else "deactivated",
                 name, _client_ip(request))
        return to_editor(session, name)

    def sieve_rename(request: Request, session: WebSession, form: dict) -> Response:
        old, new = form.get("name", ""), form.get("new", "")
        try:
            new = scripts.checked_name(new)
            site.store.rename_sieve_script(session.user_id, old, new)
        except scripts.BadName:
            note(session, "error", "sieve_bad_name")
            return to_editor(session, old)
        except NotFound:
            note(session, "error", "sieve_gone", name=old)
            return to_editor(session)
        except AlreadyExists:
            note(session, "error", "sieve_exists", name=new)
            return to_editor(session, old)
        note(session, "ok", "sieve_renamed", name=new)
        log.info("account page: %s renamed Sieve script %r to %r ip=%s", session.address, old, new,
                 _client_ip(request))
        return to_editor(session, new)

    def sieve_delete(request: Request, session: WebSession, form: dict) -> Response:
        name = form.get("name", "")
        try:
            site.store.delete_sieve_script(session.user_id, name)
        except NotFound:
            note(session, "error", "sieve_gone", name=name)
            return to_editor(session)
        except ScriptActive:
            note(session, "error", "sieve_is_active")
            return to_editor(session, name)
        note(session, "ok", "sieve_deleted", name=name)
        log.info("account page: %s deleted Sieve script %r ip=%s", session.address, name, _client_ip(request))
        return to_editor(session)

    return [
        Route("/", lambda request: RedirectResponse("/account", 303)),
        Route("/account", page),
        Route("/account/lang/{lang}", switch_language),
        Route("/account/sign-in", checked(sign_in, signed_in=False), methods=["POST"]),
        Route("/account/second-step", checked(second_step, signed_in=False), methods=["POST"]),
        Route("/account/sign-out", checked(sign_out, signed_in=False), methods=["POST"]),
        Route("/account/password", checked(change_password), methods=["POST"]),
        Route("/account/app-passwords", checked(create_app_password), methods=["POST"]),
        Route("/account/app-passwords/revoke", checked(revoke_app_password), methods=["POST"]),
        Route("/account/totp/start", checked(totp_start), methods=["POST"]),
        Route("/account/totp/confirm", checked(totp_confirm), methods=["POST"]),
        Route("/account/totp/off", checked(totp_off), methods=["POST"]),
        *(Route(path, checked(rules_form(apply, done)), methods=["POST"])
          for path, (apply, done) in rules_panels.FORMS.items()),
        Route("/account/sieve/save", checked(sieve_save, form_limit=sieve_form_limit), methods=["POST"]),
        Route("/account/sieve/activate", checked(sieve_activate), methods=["POST"]),
        Route("/account/sieve/rename", checked(sieve_rename), methods=["POST"]),
        Route("/account/sieve/delete", checked(sieve_delete), methods=["POST"]),
        Mount("/account/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
