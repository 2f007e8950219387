"""Security fixtures: a platform with the account tables, and a small app behind the
authentication middleware (the security routes plus a few protected routes that report
who called them), served by TestClient or by a real uvicorn for the browser."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import hygie.web
from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.security import api
from hygie.security.middleware import AuthMiddleware
from hygie.security.model import Principal
from hygie.store.schema import metadata
from hygie.web.pages import NavEntry, render

BASE = "http://testserver"
PASSWORD = "correct horse battery staple"


def make_platform(database_url: str, var_dir: Path, base_url: str = BASE) -> Platform:
    platform = open_platform(load_settings(database_url=database_url, var_dir=var_dir,
                                           base_url=base_url))
    metadata.create_all(platform.engine)
    return platform


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    platform = make_platform(database_url, tmp_path / "var")
    yield platform
    platform.close()


@pytest.fixture
def sqlite_platform(tmp_path: Path) -> Iterator[Platform]:
    """For tests that exercise HTTP or crypto only: one engine is enough."""
    platform = make_platform(f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var")
    yield platform
    platform.close()


def _who(principal: Principal) -> dict[str, object]:
    return {"subject": principal.subject, "kind": str(principal.kind),
            "client_id": principal.client_id, "scope": str(principal.scopes),
            "display": principal.display, "roles": sorted(principal.roles),
            "patient": principal.patient, "hospital": principal.hospital}


async def whoami(request: Request) -> Response:
    return JSONResponse(_who(request.state.principal))


async def fhir_patients(request: Request) -> Response:
    principal: Principal = request.state.principal
    principal.require("Patient", "s")
    return JSONResponse({"resourceType": "Bundle", "type": "searchset", "total": 0})


async def fhir_metadata(request: Request) -> Response:
    return JSONResponse({"resourceType": "CapabilityStatement",
                         "caller": getattr(request.state.principal, "subject", None)})


async def admin_action(request: Request) -> Response:
    request.state.principal.require_scope("security:admin")
    return JSONResponse({"done": True})


async def echo_post(request: Request) -> Response:
    return JSONResponse({"posted_by": request.state.principal.subject})


async def home_page(request: Request) -> Response:
    principal: Principal = request.state.principal
    return render(request, "base.html", {"who": principal.subject})


async def ws_whoami(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"subject": websocket.state.principal.subject})
    await websocket.close()


def make_app(platform: Platform) -> Starlette:
    """The security routes and some protected ones, behind ``AuthMiddleware``."""
    app = Starlette(
        routes=[
            *api.routes(),
            Route("/api/whoami", whoami),
            Route("/api/echo", echo_post, methods=["POST"]),
            Route("/api/admin", admin_action, methods=["POST"]),
            Route("/fhir/Patient", fhir_patients),
            Route("/fhir/metadata", fhir_metadata),
            Route("/record", home_page),
            WebSocketRoute("/ws/whoami", ws_whoami),
            Mount("/static", StaticFiles(directory=Path(hygie.web.__file__).parent / "static")),
        ],
        middleware=[Middleware(AuthMiddleware, platform=platform, public_paths=["/open/"])],
        exception_handlers=api.exception_handlers(),
    )
    app.state.platform = platform
    app.state.nav = [NavEntry("Dossier patient", "/record")]
    return app


@pytest.fixture
def app(sqlite_platform: Platform) -> Starlette:
    return make_app(sqlite_platform)


@pytest.fixture
def http(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A real uvicorn serving an app on a loopback port, in a background thread."""

    def __init__(self, app: Starlette, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off", ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# --- logs of the whole run, for the personal-data check -------------------------------------


class _KeepLogs(logging.Handler):
    """Keeps every log record of the test run (message and traceback), in memory."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted is still kept, raw
            self.lines.append(repr(record.msg))


#: Installed when this folder is collected, i.e. before any test of the run starts, so
#: that it sees the logs of every package's tests, not only of these.
RUN_LOGS = _KeepLogs()
logging.getLogger().addHandler(RUN_LOGS)
for _name in ("hygie", "uvicorn", "uvicorn.error", "uvicorn.access", "starlette"):
    if logging.getLogger(_name).getEffectiveLevel() > logging.INFO:
        logging.getLogger(_name).setLevel(logging.INFO)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The log check runs last, over the logs of everything that ran before it."""
    last = [i for i in items if i.nodeid.endswith("::test_no_personal_data_in_the_logs")]
    for item in last:
        items.remove(item)
        items.append(item)
