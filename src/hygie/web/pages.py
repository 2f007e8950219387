"""Page rendering shared by every service: one Jinja2 environment, one layout.

Each package keeps its pages in ``<package>/templates/<package>/`` and extends
``base.html``; the environment looks in every package's ``templates`` folder, so a
service never needs to know where the layout lives. The navigation comes from
``app.state.nav`` (set by ``app.py``, the only place that knows every service).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class NavEntry:
    """One entry of the top navigation: a service, what it is for (the home page says
    it), and whether it is built yet."""

    label: str
    path: str
    built: bool = True
    summary: str = ""


@cache
def environment() -> jinja2.Environment:
    folders = [str(_PACKAGE_ROOT / "web" / "templates")]
    folders += sorted(str(p) for p in _PACKAGE_ROOT.glob("*/templates") if p.parent.name != "web")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=jinja2.select_autoescape(["html", "xml", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(request: Request, template: str, context: dict[str, Any] | None = None,
           status_code: int = 200) -> HTMLResponse:
    """Render ``template`` inside the shared layout for this request."""
    ctx: dict[str, Any] = {
        "request": request,
        "nav": getattr(request.app.state, "nav", []),
        "user": getattr(request.state, "user", None),
    }
    ctx.update(context or {})
    html = environment().get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status_code)
