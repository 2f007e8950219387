"""HTTP routes of online pre-admission (mounted under ``/scheduling`` with the others).

The patient's routes (``/public/api/preadmission/<secret>``) take the link's secret as
credential; the staff's (``/api/preadmissions``) need ``Patient`` update scope, since
validation writes the Patient and what hangs on it.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hygie.scheduling.api import (
    int_field,
    json_response,
    read_json,
    service_of,
    text_field,
    translated,
)
from hygie.scheduling.errors import InvalidInput, PayloadTooLarge, SchedulingError
from hygie.scheduling.model import PARIS
from hygie.security.middleware import require_scope
from hygie.web.pages import render


def _desk(request: Request):  # type: ignore[no-untyped-def]
    return service_of(request).preadmission


@translated
async def patient_file(request: Request) -> Response:
    desk, secret = _desk(request), request.path_params["secret"]
    if request.method == "GET":
        return json_response(await run_in_threadpool(desk.view, secret))
    data = await read_json(request)
    warnings = await run_in_threadpool(desk.save, secret, data.get("answers"))
    return json_response({"saved": True, "warnings": warnings})


@translated
async def patient_document(request: Request) -> Response:
    desk, secret = _desk(request), request.path_params["secret"]
    limit = service_of(request).options.max_upload_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + 64 * 1024:
        raise PayloadTooLarge(f"a document may not exceed {limit // (1024 * 1024)} MB")
    try:
        async with request.form(max_files=1, max_fields=4, max_part_size=limit + 1) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidInput("send the document in a 'file' field")
            data = await upload.read(limit + 1)
            kind, title = form.get("kind"), form.get("title")
    except SchedulingError:
        raise
    except Exception as exc:  # multipart errors are the sender's
        raise InvalidInput(f"the upload is not a valid multipart form: {exc}") from exc
    saved = await run_in_threadpool(desk.upload, secret, kind if isinstance(kind, str) else "",
                                    title if isinstance(title, str) else "", data)
    return json_response({"id": saved.id, "kind": saved.kind, "title": saved.title,
                          "content_type": saved.content_type, "size": saved.size}, 201)


@translated
async def patient_submit(request: Request) -> Response:
    response_id = await run_in_threadpool(_desk(request).submit, request.path_params["secret"])
    return json_response({"status": "submitted", "response": f"QuestionnaireResponse/"
                                                             f"{response_id}"})


@translated
async def staff_files(request: Request) -> Response:
    desk = _desk(request)
    if request.method == "GET":
        require_scope(request, "Patient", "r")
        return json_response({"files": await run_in_threadpool(
            desk.listing, request.query_params.get("status") or None)})
    require_scope(request, "Patient", "u")
    data = await read_json(request)
    from datetime import date, time

    from hygie.scheduling.availability import local_instant

    try:
        planned = date.fromisoformat(text_field(data, "planned", max_len=10) or "")
    except ValueError as exc:
        raise InvalidInput("planned is a date YYYY-MM-DD") from exc
    phone = text_field(data, "phone", required=False, max_len=30)
    if phone:
        from hygie.scheduling.verification import normalize_mobile

        phone = normalize_mobile(phone)
    file_id = await run_in_threadpool(lambda: desk.invite(
        site_id=text_field(data, "site", max_len=64) or "",
        planned_start_utc=local_instant(planned, time(8), PARIS),
        family=text_field(data, "family", max_len=100) or "",
        given=text_field(data, "given", max_len=100) or "",
        birth_date=text_field(data, "birth_date", max_len=10) or "", phone=phone))
    return json_response({"id": file_id, "url": desk.url(file_id)}, 201)


@translated
async def staff_file(request: Request) -> Response:
    desk, file_id = _desk(request), request.path_params["file_id"]
    action = request.path_params.get("action")
    if action is None:
        require_scope(request, "Patient", "r")
        return json_response(await run_in_threadpool(desk.detail, file_id))
    require_scope(request, "Patient", "u")
    if action == "validate":
        return json_response(await run_in_threadpool(desk.validate, file_id))
    if action == "reject":
        data = await read_json(request)
        await run_in_threadpool(desk.reject, file_id, text_field(data, "note", max_len=1000))
        return json_response({"status": "rejected"})
    raise InvalidInput(f"unknown action {action!r}")


@translated
async def staff_document(request: Request) -> Response:
    require_scope(request, "Patient", "r")
    content_type, data = await run_in_threadpool(
        _desk(request).document, request.path_params["file_id"],
        int_field(request.path_params, "upload_id"))
    # Served as a download in a sandbox: an uploaded file never runs in our origin.
    return Response(data, media_type=content_type, headers={
        "Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff",
        "Content-Disposition": "inline"})


async def form_page(request: Request) -> Response:
    return render(request, "scheduling/preadmission.html",
                  {"secret": request.path_params["secret"]})


async def review_page(request: Request) -> Response:
    return render(request, "scheduling/review.html", {})


def routes() -> list[BaseRoute]:
    return [
        Route("/preadmission/{secret}", form_page),
        Route("/staff/preadmissions", review_page),
        Route("/public/api/preadmission/{secret}", patient_file, methods=["GET", "PUT"]),
        Route("/public/api/preadmission/{secret}/documents", patient_document,
              methods=["POST"]),
        Route("/public/api/preadmission/{secret}/submit", patient_submit, methods=["POST"]),
        Route("/api/preadmissions", staff_files, methods=["GET", "POST"]),
        Route("/api/preadmissions/{file_id}", staff_file),
        Route("/api/preadmissions/{file_id}/{action}", staff_file, methods=["POST"]),
        Route("/api/preadmissions/{file_id}/documents/{upload_id}", staff_document),
    ]
