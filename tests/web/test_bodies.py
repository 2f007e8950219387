"""A service route's JSON body: bounded while it streams in, and refused precisely."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from hygie.web.bodies import read_json_object


class Refused(Exception):
    """What the route's service would raise (its translated handler answers 400)."""


async def echo(request: Request) -> Response:
    try:
        return JSONResponse(await read_json_object(request, 64, Refused))
    except Refused as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)


@pytest.fixture
def client() -> TestClient:
    return TestClient(Starlette(routes=[Route("/", echo, methods=["POST"])]))


@pytest.mark.parametrize(("body", "detail"), [
    (b"{not json", "the body is not valid JSON"),
    (b"[1, 2]", "the body must be a JSON object"),
    (b'{"x": "' + b"a" * 80 + b'"}', "the body is larger than 64 bytes"),
])
def test_a_bad_body_is_refused_with_what_is_wrong(client: TestClient, body: bytes,
                                                    detail: str) -> None:
    res = client.post("/", content=body)
    assert res.status_code == 400 and res.json() == {"detail": detail}


def test_a_body_without_a_length_stops_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # sent chunked: no Content-Length to trust
        yield b'{"x": "'
        yield b"a" * 100
        yield b'"}'

    res = client.post("/", content=chunks())
    assert res.status_code == 400 and res.json() == {"detail": "the body is larger than 64 bytes"}


def test_an_object_is_read_and_an_empty_body_is_an_empty_object(client: TestClient) -> None:
    assert client.post("/", content=b'{"a": 1}').json() == {"a": 1}
    assert client.post("/", content=b"").json() == {}
