"""Login and logout. The login form is protected by a double-submit token (a cookie and a
hidden field that must match): there is no session yet to hold a CSRF token."""

from __future__ import annotations

import logging
import re
import secrets
from math import ceil

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from harness.console.auth import LoginRefused, authenticate, same_token
from harness.console.guard import SESSION_COOKIE
from harness.console.pages.common import render, session_of

log = logging.getLogger("harness.console")

LOGIN_CSRF_COOKIE = "pgferry_login_csrf"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never another origin (//host, scheme:, backslashes)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_form(
    request: Request,
    message: str | None = None,
    status: int = 200,
    *,
    next_: str | None = None,
    role: str = "",
) -> Response:
    # the token of this browser's login cookie stays while it lasts: two tabs, or a request
    # for another page meanwhile, do not invalidate a form already shown
    kept = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    token = kept if _TOKEN.fullmatch(kept) else secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {
            "login_token": token,
            "message": message,
            "next": _safe_next(next_ or request.query_params.get("next")),
            "role": role,
        },
        status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/login",
    )
    return response


async def login_page(request: Request) -> Response:
    store = request.app.state.store
    if store.get(request.cookies.get(SESSION_COOKIE), activity=False) is not None:
        return RedirectResponse("/", 303)
    return _login_form(request)


async def login(request: Request) -> Response:
    form = await request.form()
    if not same_token(str(form.get("login_token", "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")):
        return render(
            request, "error.html", {"message": "refused: the login form expired; reload it"}, 403
        )
    role, password = str(form.get("role", "")).strip(), str(form.get("password", ""))
    settings = request.app.state.settings
    throttle = request.app.state.throttle
    address = request.client.host if request.client else "unknown"
    wait = throttle.wait_seconds(address)
    if wait:
        log.warning("console login throttled", extra={"address": address})
        message = f"too many failed logins from this address: try again in {ceil(wait)} s"
        return _login_form(request, message, 429, next_=str(form.get("next", "/")), role=role)
    try:
        console_role, connection = await run_in_threadpool(authenticate, settings, role, password)
    except LoginRefused as refused:
        if refused.guess:
            throttle.failed(address)
        return _login_form(request, str(refused), 403, next_=str(form.get("next", "/")), role=role)
    throttle.succeeded(address)
    store = request.app.state.store
    old = store.get(request.cookies.get(SESSION_COOKIE), activity=False)
    if old is not None:
        store.end(old)  # a new id on every login: no session fixation
    session = store.create(role, console_role, password, connection)
    response = RedirectResponse(_safe_next(str(form.get("next", "/"))), 303)
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        max_age=int(settings.absolute_seconds),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


async def logout(request: Request) -> Response:
    request.app.state.store.end(session_of(request))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
