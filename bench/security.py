"""Security benchmark: token costs, the middleware on the read path, Argon2 timing.

Run: ``.venv/bin/python bench/security.py`` (about half a minute). Prints one line per
figure, ``name: value unit (ratio x vs peer)``:

* ``token_issue`` / ``token_verify_uncached`` / ``token_verify_cached``: ES256 signing,
  full verification, and a cache hit (peer: the uncached verification);
* ``asgi_with_auth``: requests/s through ``AuthMiddleware`` + a tiny route, driven
  in-process (peer: the same route without the middleware);
* ``http_protected``: requests/s over real HTTP/1.1 keep-alive to one uvicorn worker,
  a bearer-protected JSON route (peer: a public route on the same server); the load
  generator runs on the same machine, so this is a floor, not a ceiling;
* ``argon2_unknown_user``: the cost of signing in as an unknown user (peer: a known
  user with a wrong password): the ratio should be close to 1.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.security import users
from hygie.security.keys import FileKeyStore
from hygie.security.middleware import AuthMiddleware
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeSet
from hygie.security.tokens import TokenService, tokens_for
from hygie.store.schema import metadata

PORT = 8765
PASSWORD = "correct horse battery staple"


def per_op(fn: Any, n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls (best of three rounds)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def bench_tokens(tmp: Path) -> None:
    tokens = TokenService(FileKeyStore(tmp / "keys"), issuer="hygie",
                          audience="https://hygie.example")
    nurse = Principal("amartin", Kind.PRACTITIONER, ScopeSet.parse("user/*.rs"),
                      display="Alice Martin", roles=frozenset({"nurse"}))
    token = tokens.issue(nurse).token
    issue = per_op(lambda: tokens.issue(nurse), 2000)
    uncached = per_op(lambda: tokens.decode(token), 2000)
    tokens.verify(token)
    cached = per_op(lambda: tokens.verify(token), 50_000)
    print(f"token_issue: {issue * 1e6:.1f} us/op")
    print(f"token_verify_uncached: {uncached * 1e6:.1f} us/op")
    print(f"token_verify_cached: {cached * 1e6:.2f} us/op "
          f"({uncached / cached:.0f} x faster vs uncached)")


async def _ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def bench_asgi(platform: Platform) -> None:
    token = tokens_for(platform).issue(
        Principal("svc", Kind.SERVICE, ScopeSet.parse("system/*.rs"))).token
    guarded = AuthMiddleware(_ok_app, platform=platform)
    headers = [(b"host", b"hygie.example"), (b"accept", b"application/fhir+json"),
               (b"authorization", f"Bearer {token}".encode())]
    scope = {"type": "http", "method": "GET", "path": "/fhir/Patient/1", "headers": headers,
             "query_string": b"", "scheme": "http"}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    async def run(app: Any, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await app(scope, receive, send)
        return n / (time.perf_counter() - start)

    n = 50_000
    bare = max(asyncio.run(run(_ok_app, n)) for _ in range(3))
    with_auth = max(asyncio.run(run(guarded, n)) for _ in range(3))
    print(f"asgi_with_auth: {with_auth:,.0f} req/s ({with_auth / bare:.2f} x vs without auth)")


def _serve(database_url: str, var_dir: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    platform = open_platform(load_settings(database_url=database_url, var_dir=var_dir))

    async def patient(request: Request) -> JSONResponse:
        request.state.principal.require("Patient", "r")
        return JSONResponse({"resourceType": "Patient", "id": "1"})

    async def capability(request: Request) -> JSONResponse:
        return JSONResponse({"resourceType": "CapabilityStatement"})

    app = Starlette(routes=[Route("/fhir/Patient/1", patient),
                            Route("/fhir/metadata", capability)],
                    middleware=[Middleware(AuthMiddleware, platform=platform)])
    app.state.platform = platform
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)


async def _load(path: str, headers: str, seconds: float, connections: int = 16) -> float:
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
               "Accept: application/fhir+json\r\n\r\n").encode()
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            done += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.perf_counter() - start)


def bench_http(platform: Platform) -> None:
    token = tokens_for(platform).issue(
        Principal("svc", Kind.SERVICE, ScopeSet.parse("system/*.rs"))).token
    ctx = multiprocessing.get_context("spawn")
    server = ctx.Process(target=_serve, args=(platform.settings.database_url,
                                              str(platform.settings.var_dir)), daemon=True)
    server.start()
    try:
        for _ in range(200):
            try:
                asyncio.run(_load("/fhir/metadata", "", 0.05, 1))
                break
            except OSError:
                time.sleep(0.05)
        public = protected = 0.0
        for _ in range(3):  # alternate, keep the best: other load on the machine varies
            public = max(public, asyncio.run(_load("/fhir/metadata", "", 2)))
            protected = max(protected, asyncio.run(
                _load("/fhir/Patient/1", f"Authorization: Bearer {token}\r\n", 2)))
    finally:
        server.terminate()
        server.join()
    print(f"http_protected: {protected:,.0f} req/s "
          f"({protected / public:.2f} x vs public route, same server)")


def bench_argon2(engine: Engine) -> None:
    users.create_user(engine, "amartin", PASSWORD, display="Alice Martin", kind="practitioner")

    # interleaved samples, so that load from other processes hits both sides alike
    samples: dict[str, list[float]] = {"amartin": [], "nobody": []}
    for _ in range(9):
        for username, taken in samples.items():
            start = time.perf_counter()
            assert users.authenticate_user(engine, username, "wrong password") is None
            taken.append(time.perf_counter() - start)
    known = statistics.median(samples["amartin"])
    unknown = statistics.median(samples["nobody"])
    print(f"argon2_unknown_user: {unknown * 1e3:.1f} ms "
          f"({unknown / known:.2f} x vs known user with a wrong password)")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        platform = open_platform(load_settings(database_url=f"sqlite:///{tmp / 'h.db'}",
                                               var_dir=tmp / "var"))
        metadata.create_all(platform.engine)
        print(f"# {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        bench_tokens(tmp)
        bench_asgi(platform)
        bench_http(platform)
        bench_argon2(platform.engine)
        platform.close()


if __name__ == "__main__":
    main()
