"""Templates (autoescaped), the filters they use, dashboard URLs and the headers of every page."""

from __future__ import annotations

import math
import numbers
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import numpy as np
from fastapi import Request
from fastapi.responses import HTMLResponse

from ml_debugger._version import __version__
from ml_debugger.server.context import LOCAL_KEY_ID

TEMPLATE_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
BASE = "/dashboard"

SECURITY_HEADERS = {
    # Everything a page loads comes from this server; plotly.js sets inline styles.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


MISSING = "–"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, numbers.Real) and math.isnan(value))


def number(value: Any, digits: int = 4) -> str:
    """A table cell: ints with thousands separators, floats to ``digits`` significant digits, '–' for none."""
    if _missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    return str(value)


def percent(value: Any) -> str:
    if _missing(value):
        return MISSING
    return f"{100 * float(value):.1f}%"


def signed(value: Any) -> str:
    """A delta with its sign."""
    if _missing(value):
        return MISSING
    return ("+" if value > 0 else "") + number(value)


def when(stamp: Any) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM UTC``."""
    if not stamp:
        return MISSING
    moment = datetime.fromisoformat(str(stamp))
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def cell(value: Any) -> str:
    """Any table value: lists joined with commas, numbers via `number`."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(cell(v) for v in value)
    return number(value)


def model_url(model: str) -> str:
    return f"{BASE}/models/{quote(model)}"


def version_url(model: str, version: str) -> str:
    return f"{model_url(model)}/versions/{quote(version)}"


def result_url(model: str, version: str, result: str, **query: Any) -> str:
    url = f"{version_url(model, version)}/results/{quote(result)}"
    params = {k: v for k, v in query.items() if v is not None}
    return f"{url}?{urlencode(params)}" if params else url


def api_url(kind: str, *names: str, **query: Any) -> str:
    """A data endpoint: ``/dashboard/api/<kind>/<names...>?<query>``."""
    url = "/".join([f"{BASE}/api/{kind}", *(quote(n) for n in names)])
    params = {k: v for k, v in query.items() if v is not None and v != ""}
    return f"{url}?{urlencode(params, doseq=True)}" if params else url


def static_url(name: str) -> str:
    return f"{BASE}/static/{name}?v={__version__}"


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(number=number, percent=percent, signed=signed, when=when, cell=cell)
_ENV.globals.update(
    model_url=model_url, version_url=version_url, result_url=result_url, api_url=api_url,
    static_url=static_url, base=BASE, version=__version__,
)


def render_text(template: str, **values: Any) -> str:
    return _ENV.get_template(template).render(**values)


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """A page or fragment with the dashboard's security headers; ``signed_in`` tells whether to offer sign-out."""
    signed_in = getattr(request.state, "dashboard_key", None) not in (None, LOCAL_KEY_ID)
    body = render_text(template, signed_in=signed_in, **values)
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
