"""Signing in to the dashboard with an API key, and the session cookie that follows.

The cookie holds ``<key id>.<expiry>.<HMAC-SHA256>`` signed with a per-server secret kept in
``<home>/dashboard-secret`` (created on first start, mode 0600). It is HttpOnly and SameSite=Lax
(Secure behind HTTPS), lasts ``SESSION_SECONDS``, and stops working as soon as its key is revoked.
Without a valid session, pages redirect to the sign-in form and ``/dashboard/api`` answers 401.
State-changing requests must also come from the dashboard's own origin. On a ``local_only``
server (``mldebugger ui``) loopback requests need no sign-in and any other request gets 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ml_debugger.exceptions import StoreError
from ml_debugger.server.context import LOCAL_KEY_ID, context, is_loopback
from ml_debugger.server.dashboard.rendering import BASE, render

COOKIE = "mld_session"
SESSION_SECONDS = 12 * 3600
SECRET_FILE = "dashboard-secret"
MAX_FORM_BYTES = 4096

router = APIRouter()


class SignInRequired(Exception):
    """No valid session: a page redirects to sign-in, a data request gets 401."""

    def __init__(self, page: bool) -> None:
        super().__init__("sign in to the dashboard with an API key first")
        self.page = page


class ForeignOrigin(Exception):
    """A state-changing request whose Origin is not this server."""


class Sessions:
    """Issues and checks session tokens with ``secret``; ``is_active(key_id)`` tells whether a key still works."""

    def __init__(self, secret: bytes, is_active: Callable[[str], bool]) -> None:
        self._secret = secret
        self._is_active = is_active

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, key_id: str, now: float | None = None) -> str:
        payload = f"{key_id}.{int((now or time.time()) + SESSION_SECONDS)}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str, now: float | None = None) -> str | None:
        """The key id of a valid, unexpired token whose key is still active, else ``None``."""
        key_id, _, rest = token.partition(".")
        expiry, _, signature = rest.partition(".")
        if not expiry.isdigit() or not hmac.compare_digest(signature, self._sign(f"{key_id}.{expiry}")):
            return None
        if int(expiry) < (now or time.time()) or not self._is_active(key_id):
            return None
        return key_id


def server_secret(home: Path) -> bytes:
    """The server's session secret, created once (atomically, readable by the owner only)."""
    path = home / SECRET_FILE
    if not path.exists():
        staging = home / f".{SECRET_FILE}.{secrets.token_hex(4)}.tmp"
        try:
            descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
            os.link(staging, path)  # fails if another process created it first: theirs wins
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create the dashboard's session secret {path}: {exc}") from exc
        finally:
            staging.unlink(missing_ok=True)
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read the dashboard's session secret {path}: {exc}") from exc


def _sessions(request: Request) -> Sessions:
    return request.app.state.dashboard_sessions


def session_key(request: Request) -> str | None:
    """The key id the request is signed in with (``LOCAL_KEY_ID`` on a local-only server), or ``None``."""
    if context(request).config.local_only:
        return LOCAL_KEY_ID if is_loopback(request) else None
    token = request.cookies.get(COOKIE)
    return _sessions(request).verify(token) if token else None


def page_session(request: Request) -> str:
    """A FastAPI dependency of pages: the session's key id; redirects to sign-in without one."""
    key_id = session_key(request)
    if key_id is None:
        raise SignInRequired(page=True)
    request.state.dashboard_key = key_id
    return key_id


def data_session(request: Request) -> str:
    """A FastAPI dependency of data requests: the session's key id; 401 without one."""
    key_id = session_key(request)
    if key_id is None:
        raise SignInRequired(page=False)
    request.state.dashboard_key = key_id
    return key_id


def same_origin(request: Request) -> None:
    """A FastAPI dependency of POST routes: refuse requests sent by another site's page."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise ForeignOrigin(origin)


def _safe_next(target: str | None) -> str:
    """Only a dashboard path may be redirected to after sign-in."""
    if target and target.startswith(f"{BASE}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{BASE}/"


async def _sign_in_required(request: Request, exc: SignInRequired) -> Response:
    local = context(request).config.local_only
    if exc.page and not local:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{BASE}/sign-in?{urlencode({'next': here})}", status_code=303)
    message = "this dashboard only answers requests from 127.0.0.1" if local else str(exc)
    headers = {"HX-Redirect": f"{BASE}/sign-in"} if request.headers.get("hx-request") and not local else None
    return JSONResponse({"error": {"type": "AuthenticationError", "message": message}}, 401, headers=headers)


async def _foreign_origin(request: Request, exc: ForeignOrigin) -> Response:
    message = f"cross-site request from {exc} refused"
    return JSONResponse({"error": {"type": "AuthenticationError", "message": message}}, 403)


def install(app: FastAPI) -> None:
    """Create the session signer and the handlers of `SignInRequired` and `ForeignOrigin`."""
    ctx = app.state.context
    app.state.dashboard_sessions = Sessions(
        server_secret(ctx.store.root), lambda key_id: ctx.store.catalog.active_key_hash(key_id) is not None
    )
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(ForeignOrigin, _foreign_origin)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str | None = None) -> Response:
    if session_key(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "signin.html", next=_safe_next(next), error=None,
                  local=context(request).config.local_only)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    same_origin(request)
    body = await request.body()
    form = parse_qs(body.decode("utf-8", "replace")) if len(body) <= MAX_FORM_BYTES else {}
    key = form.get("key", [""])[0].strip()
    target = _safe_next(form.get("next", [None])[0])
    key_id = context(request).keys.verify(key) if key else None
    if key_id is None:
        return render(request, "signin.html", status=401, next=target, local=False,
                      error="That key is unknown or revoked. Keys look like mldbg_<id>_<secret>.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, _sessions(request).issue(key_id), max_age=SESSION_SECONDS, path="/",
        httponly=True, samesite="lax", secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
def sign_out(request: Request) -> Response:
    same_origin(request)
    response = RedirectResponse(f"{BASE}/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response
