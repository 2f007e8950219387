"""Imaging fixtures: phantoms, a migrated platform on each engine, the service, and a
small app serving only the imaging routes behind the real authentication middleware."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.testclient import TestClient

from hygie.config import load_settings
from hygie.imaging import api
from hygie.imaging.model import ImagingSettings
from hygie.imaging.phantom import Phantom, PhantomSpec, generate_phantom, phantom_series
from hygie.imaging.service import ImagingService
from hygie.platform import Platform, open_platform
from hygie.security.middleware import AuthMiddleware
from hygie.security.tokens import issue_service_token
from hygie.store.migrations import upgrade

BASE = "http://testserver"
#: A small phantom for protocol tests: 20 slices of 64 x 64.
TINY = PhantomSpec(shape=(20, 64, 64), field_of_view_mm=380.0, slice_thickness_mm=15.0,
                   seed=11, patient_id="TINY-1", patient_name="Petit^Fantome")


def part10(ds: Any) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def phantom() -> Phantom:
    """The default phantom (96 slices of 192 x 192, lesions of known volume)."""
    return generate_phantom(PhantomSpec())


@pytest.fixture(scope="session")
def tiny() -> Phantom:
    return generate_phantom(TINY)


@pytest.fixture(scope="session")
def tiny_files(tiny: Phantom) -> list[bytes]:
    return [part10(ds) for ds in phantom_series(tiny)]


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    settings = load_settings(database_url=database_url, var_dir=tmp_path / "var",
                             base_url=BASE)
    p = open_platform(settings)
    upgrade(p.engine)
    yield p
    p.close()


@pytest.fixture
def sqlite_platform(tmp_path: Path) -> Iterator[Platform]:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'h.db'}",
                             var_dir=tmp_path / "var", base_url=BASE)
    p = open_platform(settings)
    upgrade(p.engine)
    yield p
    p.close()


def make_service(platform: Platform, **settings: Any) -> ImagingService:
    """The platform's service; quantification on arrival is off unless asked for."""
    settings.setdefault("quantify_on_arrival", False)
    settings.setdefault("fsync", False)
    return ImagingService.for_platform(platform, ImagingSettings(**settings))


@pytest.fixture
def service(platform: Platform) -> ImagingService:
    return make_service(platform)


def token(platform: Platform, scope: str = "system/*.cruds imaging:admin",
          subject: str = "test-suite") -> str:
    return issue_service_token(platform, subject=subject, scope=scope)


def imaging_app(platform: Platform) -> Starlette:
    app = Starlette(routes=[Mount("/imaging", routes=api.routes())],
                    middleware=[Middleware(AuthMiddleware, platform=platform)])
    app.state.platform = platform
    app.state.nav = []
    return app


@pytest.fixture
def client(service: ImagingService, platform: Platform) -> Iterator[TestClient]:
    with TestClient(imaging_app(platform), base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {token(platform)}"
        yield c


def multipart(files: list[bytes], boundary: str = "test-boundary-1") -> tuple[bytes, str]:
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
                    + f + b"\r\n" for f in files) + b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'
