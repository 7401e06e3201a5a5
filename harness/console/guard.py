"""The gate every request passes (an ASGI middleware), before any route runs:

- security headers on every response (CSP default-src 'self', no framing, no sniffing, no
  referrer; Cache-Control no-store on everything but the static files);
- no anonymous access: without a live session, a page is redirected to /login (an htmx request
  is told to go there with HX-Redirect), anything else is answered 401;
- a session's role membership is read again every role_recheck_seconds (a revoked grant ends
  the session);
- CSRF: every request that is not GET or HEAD carries the session's token, in the
  X-CSRF-Token header (htmx: hx-headers on <body>) or a csrf_token form field; else 403.

Only /login and /static/ are reachable without a session (the login form has its own
double-submit token, harness.console.pages.login).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harness.console.auth import SessionStore, recheck_membership, same_token
from harness.console.settings import ConsoleSettings

SESSION_COOKIE = "pgferry_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
PUBLIC_PATHS = ("/login",)
STATIC_PREFIX = "/static/"
POLL_PATHS = ("/overview/live",)  # background polls: not the user's activity
MAX_FORM_BYTES = 64 * 1024

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class Guard:
    def __init__(self, app: ASGIApp, store: SessionStore, settings: ConsoleSettings) -> None:
        self.app = app
        self.store = store
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        send = _with_headers(send, static=path.startswith(STATIC_PREFIX))
        if path.startswith(STATIC_PREFIX) or path in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session = self.store.get(
            request.cookies.get(SESSION_COOKIE), activity=path not in POLL_PATHS
        )
        if session is not None and not await run_in_threadpool(
            recheck_membership, self.store, session, self.settings
        ):
            session = None
        if session is None:
            await _not_logged_in(request)(scope, receive, send)
            return
        scope.setdefault("state", {})["session"] = session
        if scope["method"] not in ("GET", "HEAD"):
            token = request.headers.get(CSRF_HEADER)
            if token is None:
                token, receive = await _form_token(request, receive)
            if not same_token(token, session.csrf_token):
                response = PlainTextResponse("refused: missing or wrong CSRF token", 403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _not_logged_in(request: Request) -> Response:
    """A page is sent to /login (and back afterwards); anything else a browser fetches on its
    own (an icon, a poll) is told 401, so it never lands on the login form."""
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    page = "text/html" in request.headers.get("accept", "")
    if request.method not in ("GET", "HEAD") or not page:
        return PlainTextResponse("not logged in", 401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)


async def _form_token(request: Request, receive: Receive) -> tuple[str | None, Receive]:
    """The csrf_token field of an urlencoded form body, and a receive that replays the body to
    the route. Other bodies must carry the header."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None, receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None, receive
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get(CSRF_FIELD, [])
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return (values[0] if len(values) == 1 else None), replay


def _with_headers(send: Send, *, static: bool) -> Send:
    cache = b"no-cache" if static else b"no-store"

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[Any] = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
            ]
            headers += [*SECURITY_HEADERS, (b"cache-control", cache)]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
