"""Reading the JSON body of a service route: bounded, parsed, refused precisely.

The edge (``security.protection``) already refuses bodies past the platform's limit;
a route reads under its own, tighter one, and the body comes in chunks so that it
stops at the limit instead of buffering what it will refuse. Each service raises
its own error type, which its ``translated`` handler turns into problem+json.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request


async def read_body(request: Request, limit: int, too_large: type[Exception]) -> bytes:
    """The body, or ``too_large`` as soon as it (or its declared length) passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int, invalid: type[Exception]
                           ) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``); ``invalid`` says what is wrong."""
    body = await read_body(request, limit, invalid)
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise invalid("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise invalid("the body must be a JSON object")
    return data
