"""HTTP routes of the imaging service, mounted under ``/imaging``.

* ``/dicomweb/...``: DICOMweb (PS3.18): STOW-RS, QIDO-RS and WADO-RS;
* ``/api/...``: the viewer's JSON and binary calls (worklist, volumes, annotations,
  quantification);
* ``/worklist`` and ``/viewer/{study}``: the pages; ``/assets/...``: their script.

Each route is a few lines of glue: parse, check the caller's scope, call the engine
in a worker thread (it does file and database I/O), write the response. Engine errors
become problem+json (RFC 9457) in ``translated``, the one place that does it.
Reading images needs ``ImagingStudy.r`` (``.s`` for searches), storing them
``ImagingStudy.c``; assigning readers needs an administrator or ``imaging:admin``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hygie.imaging.errors import ImagingError, InvalidRequest, NotFound, PayloadTooLarge
from hygie.security.model import InsufficientScope, Kind, Principal
from hygie.security.responses import problem_response, scope_problem
from hygie.web.bodies import read_body

#: Path prefixes (under /imaging) reachable without an account: none.
PUBLIC_PATHS: list[str] = []

DICOM_JSON = "application/dicom+json"
_STATIC = Path(__file__).parent / "static"


def problem(status: int, title: str, detail: str, slug: str,
            headers: dict[str, str] | None = None) -> Response:
    return problem_response(status, detail, headers, title=title,
                            type_=f"urn:hygie:problem:imaging:{slug}")


Handler = Callable[[Request], Awaitable[Response]]


def translated(handler: Handler) -> Handler:
    """Turn the engine's errors (and scope refusals) into problem+json."""
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except ImagingError as exc:
            return problem(exc.status, exc.title, exc.detail, exc.slug)
        except InsufficientScope as exc:
            return scope_problem(exc, "urn:hygie:problem:imaging:forbidden")
    return wrapper


def _service(request: Request) -> Any:
    try:
        from hygie.imaging.service import ImagingService
    except ImportError as exc:
        from hygie.imaging.errors import MissingExtra

        raise MissingExtra(f"{exc.name} is missing: pip install 'hygie[imaging]'") from exc
    return ImagingService.for_platform(request.app.state.platform)


def _principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise InsufficientScope("system/ImagingStudy.r", "authentication is required")
    return principal  # type: ignore[no-any-return]


def _may_read(request: Request, search: bool = False) -> Principal:
    principal = _principal(request)
    principal.require("ImagingStudy", "s" if search else "r")
    return principal


def _is_admin(principal: Principal) -> bool:
    return principal.kind == Kind.ADMIN or principal.scopes.has("imaging:admin")


def _base(request: Request) -> str:
    base = request.app.state.platform.settings.base_url.rstrip("/")
    return f"{base}/imaging/dicomweb"


def _dicom_json(items: list[dict[str, Any]], request: Request,
                headers: dict[str, str] | None = None) -> Response:
    from hygie.imaging.qido import render

    return Response(render(items, _base(request)), media_type=DICOM_JSON, headers=headers)


# --- STOW-RS (PS3.18 §10.5) ------------------------------------------------------------

@translated
async def stow(request: Request) -> Response:
    """Store instances as their parts arrive: each part is parsed and written in a
    worker thread while the rest of the body is still being received; the index
    commits once the body is complete and checked, then the response is sent."""
    from hygie.imaging.archive import DATASET_MISMATCH, IO_POOL
    from hygie.imaging.errors import UnsupportedMediaType
    from hygie.imaging.multipart import MultipartStream

    _principal(request).require("ImagingStudy", "c")
    svc = _service(request)
    archive = svc.archive
    limit = svc.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    part_type, stream = MultipartStream.for_content_type(request.headers.get("content-type", ""))
    if part_type and part_type != "application/dicom":
        raise UnsupportedMediaType(f"only type=\"application/dicom\" is stored, not {part_type}")
    study_uid = request.path_params.get("study")
    futures = []
    skipped = size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is larger than {limit} bytes")
            for part in stream.feed(chunk):
                if part.content_type not in ("", "application/dicom"):
                    skipped += 1
                    continue
                futures.append(IO_POOL.submit(archive.ingest, part.content, study_uid))
        stream.close()
    except BaseException:
        done = await run_in_threadpool(lambda: [f.result() for f in futures])
        await run_in_threadpool(archive.discard, done)
        raise
    ingested = await run_in_threadpool(lambda: [f.result() for f in futures])
    outcome = await run_in_threadpool(lambda: archive.commit(ingested, sync=False))
    archive.sync_later(outcome.studies)
    if not outcome.stored and not outcome.failed and not skipped:
        raise InvalidRequest("the request holds no DICOM instance")
    base = _base(request)
    response: dict[str, Any] = {}
    if study_uid or outcome.studies:
        uid = study_uid or outcome.studies[0]
        response["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{uid}"]}
    if outcome.stored:
        response["00081199"] = {"vr": "SQ", "Value": [{
            "00081150": {"vr": "UI", "Value": [r.sop_class_uid]},
            "00081155": {"vr": "UI", "Value": [r.sop_instance_uid]},
            "00081190": {"vr": "UR", "Value": [
                f"{base}/studies/{r.study_uid}/series/{r.series_uid}/instances/"
                f"{r.sop_instance_uid}"]},
        } for r in outcome.stored]}
    failed = [*outcome.failed, *[("", "", DATASET_MISMATCH, "not application/dicom")] * skipped]
    if failed:
        response["00081198"] = {"vr": "SQ", "Value": [{
            **({"00081150": {"vr": "UI", "Value": [c]}} if c else {}),
            **({"00081155": {"vr": "UI", "Value": [s]}} if s else {}),
            "00081197": {"vr": "US", "Value": [reason]},
        } for c, s, reason, _ in failed]}
    status = 200 if not failed else (202 if outcome.stored else 409)
    return Response(orjson.dumps(response), status_code=status, media_type=DICOM_JSON)


# --- QIDO-RS (PS3.18 §10.6) ------------------------------------------------------------

def _qido(level: str) -> Handler:
    @translated
    async def search(request: Request) -> Response:
        from hygie.imaging import qido

        _may_read(request, search=True)
        svc = _service(request)
        q = qido.parse_qido(request.query_params.multi_items(), level)
        study = request.path_params.get("study")
        series = request.path_params.get("series")
        if level == "study":
            items = await run_in_threadpool(qido.search_studies, svc.archive.engine, q)
        elif level == "series":
            items = await run_in_threadpool(qido.search_series, svc.archive.engine, q, study)
        else:
            items = await run_in_threadpool(
                lambda: qido.search_instances(svc.archive.engine, q, study, series,
                                              metadata=svc.archive.metadata_by_uid))
        headers = {}
        if q.unsupported:
            headers["Warning"] = ("299 hygie: The following attributes were not supported "
                                  f"for matching: {', '.join(q.unsupported)}")
        if not items:
            return Response(status_code=204, headers=headers)
        return _dicom_json(items, request, headers)
    return search


# --- WADO-RS (PS3.18 §10.4) ------------------------------------------------------------

def _rows(svc: Any, request: Request) -> list[Any]:
    p = request.path_params
    return svc.archive.instances(p["study"], p.get("series"), p.get("instance"))  # type: ignore[no-any-return]


@translated
async def retrieve(request: Request) -> Response:
    from hygie.imaging import wado
    from hygie.imaging.multipart import iter_blocks, iter_multipart, new_boundary

    _may_read(request)
    svc = _service(request)
    accepts = wado.parse_accept(request.headers.get("accept"), wado.Accept(
        "multipart/related", "application/dicom", None))
    syntax = wado.choose_instance_syntax(accepts)
    rows = await run_in_threadpool(_rows, svc, request)
    wado.check_syntax(rows, syntax)
    boundary = new_boundary()
    parts = iter_blocks(iter_multipart(wado.iter_instances(svc.archive, rows, syntax), boundary))
    return StreamingResponse(
        iterate_in_threadpool(parts),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}')


@translated
async def metadata(request: Request) -> Response:
    from hygie.imaging.archive import BASE_PLACEHOLDER

    _may_read(request)
    svc = _service(request)
    rows = await run_in_threadpool(_rows, svc, request)
    parts = await run_in_threadpool(lambda: [svc.archive.metadata_of(r) for r in rows])
    body = b"[" + b",".join(parts) + b"]"
    body = body.replace(BASE_PLACEHOLDER.encode(), _base(request).encode())
    return Response(body, media_type=DICOM_JSON)


@translated
async def frames(request: Request) -> Response:
    from hygie.imaging import wado
    from hygie.imaging.multipart import iter_multipart, new_boundary

    _may_read(request)
    svc = _service(request)
    row = (await run_in_threadpool(_rows, svc, request))[0]
    wanted = wado.parse_frame_list(request.path_params["frames"], row.number_of_frames)
    accepts = wado.parse_accept(request.headers.get("accept"), wado.Accept(
        "multipart/related", "application/octet-stream", None))
    items = await run_in_threadpool(
        lambda: list(wado.retrieve_frames(svc.archive, row, wanted, accepts)))
    boundary = new_boundary()
    part_type = items[0][0].split(";")[0]
    body = b"".join(iter_multipart(items, boundary))
    return Response(body, media_type=f'multipart/related; type="{part_type}"; '
                                     f"boundary={boundary}")


@translated
async def rendered(request: Request) -> Response:
    from hygie.imaging import wado

    _may_read(request)
    svc = _service(request)
    row = (await run_in_threadpool(_rows, svc, request))[0]
    frame = request.path_params.get("frame", 1)
    accepts = wado.parse_accept(request.headers.get("accept"),
                                wado.Accept("image/png", None, None))
    try:
        quality = int(request.query_params.get("quality", "90"))
    except ValueError as exc:
        raise InvalidRequest("quality must be an integer 1-100") from exc
    media, data = await run_in_threadpool(
        wado.render_frame, svc.archive, row, int(frame), accepts,
        request.query_params.get("window"), request.query_params.get("viewport"), quality)
    return Response(data, media_type=media)


@translated
async def bulkdata(request: Request) -> Response:
    from hygie.imaging import wado

    _may_read(request)
    svc = _service(request)
    row = (await run_in_threadpool(_rows, svc, request))[0]
    data = await run_in_threadpool(wado.bulkdata, svc.archive, row, request.path_params["tag"])
    return Response(data, media_type="application/octet-stream")


# --- viewer API ------------------------------------------------------------------------

def _readings(svc: Any) -> Any:
    from hygie.imaging.readings import Readings

    return Readings(svc.archive.engine, svc.archive)


async def _json_body(request: Request, limit: int = 64 * 1024) -> Any:
    body = await read_body(request, limit, PayloadTooLarge)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("the body is not valid JSON") from exc


@translated
async def worklist(request: Request) -> Response:
    principal = _may_read(request, search=True)
    svc = _service(request)
    everyone = _is_admin(principal) and request.query_params.get("mine") != "1"
    items = await run_in_threadpool(_readings(svc).worklist,
                                    None if everyone else principal.subject)
    jobs = await run_in_threadpool(_job_summaries, svc, [i.study_uid for i in items])
    return Response(orjson.dumps({
        "reader": principal.subject, "admin": _is_admin(principal),
        "studies": [{"studyUid": i.study_uid, "patientName": i.patient_name.replace("^", " "),
                     "patientId": i.patient_id, "studyDate": i.study_date,
                     "description": i.description, "modalities": i.modalities,
                     "readings": i.readings, "quantification": jobs.get(i.study_uid)}
                    for i in items]}), media_type="application/json")


def _job_summaries(svc: Any, study_uids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for uid in study_uids:
        for job in svc.jobs.for_study(uid):
            figures = orjson.loads(job.result) if job.result else None
            out[uid] = {"state": job.state, "seriesUid": job.series_uid,
                        "percentOpacity": figures["percent_opacity"] if figures else None,
                        "totalScore": figures["total_score"] if figures else None,
                        "reportId": job.report_id}
    return out


@translated
async def assign(request: Request) -> Response:
    principal = _principal(request)
    if not _is_admin(principal):
        principal.require_scope("imaging:admin")
    body = await _json_body(request)
    reader = body.get("reader") if isinstance(body, dict) else None
    if not isinstance(reader, str):
        raise InvalidRequest('the body must be {"reader": "<account name>"}')
    svc = _service(request)
    await run_in_threadpool(_readings(svc).assign, request.path_params["study"], reader,
                            principal.subject)
    return Response(status_code=204)


@translated
async def set_reading(request: Request) -> Response:
    principal = _may_read(request)
    body = await _json_body(request)
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, str):
        raise InvalidRequest('the body must be {"status": "assigned|in-progress|done"}')
    svc = _service(request)
    await run_in_threadpool(_readings(svc).set_status, request.path_params["study"],
                            principal.subject, status)
    return Response(status_code=204)


@translated
async def study_series(request: Request) -> Response:
    _may_read(request)
    svc = _service(request)
    from hygie.imaging import qido

    items = await run_in_threadpool(qido.search_series, svc.archive.engine, qido.Query(),
                                    request.path_params["study"])
    if not items:
        raise NotFound("no stored study with this UID")
    out = []
    for item in items:
        def value(tag: str, item: dict[str, Any] = item) -> Any:
            return (item.get(tag, {}).get("Value") or [None])[0]
        out.append({"seriesUid": value("0020000E"), "modality": value("00080060"),
                    "number": value("00200011"), "description": value("0008103E"),
                    "instances": value("00201209")})
    return Response(orjson.dumps(out), media_type="application/json")


def _volume_payload(svc: Any, series_uid: str) -> tuple[dict[str, Any], bytes]:
    from hygie.imaging.lung_report import load_volume

    volume, sources = load_volume(svc.archive, series_uid)
    first = sources[0]
    header = {
        "seriesUid": series_uid, "studyUid": volume.study_uid,
        "shape": list(volume.shape), "spacing": list(volume.spacing),
        "origin": list(volume.origin), "rowDir": list(volume.row_dir),
        "colDir": list(volume.col_dir), "normal": list(volume.normal),
        "superiorLast": volume.superior_is_up(),
        "patientName": str(getattr(first, "PatientName", "")).replace("^", " "),
        "description": str(getattr(first, "SeriesDescription", "")),
    }
    return header, volume.hu.astype("<i2").tobytes()


@translated
async def volume(request: Request) -> Response:
    """The series' voxels (int16 little endian, HU) with its geometry in a header."""
    _may_read(request)
    svc = _service(request)
    header, data = await run_in_threadpool(_volume_payload, svc,
                                           request.path_params["series"])
    body = await run_in_threadpool(gzip.compress, data, 1)
    return Response(body, media_type="application/octet-stream", headers={
        # ASCII JSON: header values are Latin-1, names need not be.
        "Content-Encoding": "gzip", "X-Volume": json.dumps(header, ensure_ascii=True),
        "Cache-Control": "private, max-age=300"})


@translated
async def get_annotation(request: Request) -> Response:
    principal = _may_read(request)
    svc = _service(request)
    data = await run_in_threadpool(_readings(svc).load_annotation,
                                   request.path_params["series"], principal.subject)
    body = await run_in_threadpool(gzip.compress, data, 1)
    return Response(body, media_type="application/octet-stream",
                    headers={"Content-Encoding": "gzip", "Cache-Control": "no-store"})


@translated
async def put_annotation(request: Request) -> Response:
    principal = _may_read(request)
    svc = _service(request)
    raw = await read_body(request, svc.settings.max_upload_bytes, PayloadTooLarge)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            raw = zlib.decompressobj(wbits=31).decompress(raw, 1 << 31)
        except zlib.error as exc:
            raise InvalidRequest("the gzip body is corrupt") from exc
    uid = await run_in_threadpool(_readings(svc).save_annotation,
                                  request.path_params["series"], principal.subject,
                                  principal.display, raw)
    return Response(orjson.dumps({"segInstanceUid": uid}), status_code=201,
                    media_type="application/json")


@translated
async def get_quantification(request: Request) -> Response:
    _may_read(request)
    svc = _service(request)
    job = await run_in_threadpool(svc.jobs.get, request.path_params["series"])
    if job is None:
        raise NotFound("this series was not quantified")
    return Response(orjson.dumps({
        "state": job.state, "error": job.error,
        "figures": orjson.loads(job.result) if job.result else None,
        "segInstanceUid": job.seg_instance_uid, "reportId": job.report_id,
    }), media_type="application/json")


@translated
async def quantification_labels(request: Request) -> Response:
    """The automatic segmentation as a label map (uint8, gzip), for the viewer."""
    from hygie.imaging.lung_report import quantification_labels as labels_of

    _may_read(request)
    svc = _service(request)
    series_uid = request.path_params["series"]
    job = await run_in_threadpool(svc.jobs.get, series_uid)
    if job is None or not job.seg_instance_uid:
        raise NotFound("this series has no automatic segmentation")
    data = await run_in_threadpool(labels_of, svc.archive, series_uid, job.seg_instance_uid)
    body = await run_in_threadpool(gzip.compress, data, 1)
    return Response(body, media_type="application/octet-stream",
                    headers={"Content-Encoding": "gzip", "Cache-Control": "private"})


@translated
async def run_quantification(request: Request) -> Response:
    principal = _may_read(request)
    principal.require("DiagnosticReport", "c")
    svc = _service(request)
    series_uid = request.path_params["series"]
    rows = await run_in_threadpool(svc.archive.series_instances, series_uid)
    svc.jobs.enqueue(series_uid, rows[0].study_uid)
    return Response(orjson.dumps({"state": "pending"}), status_code=202,
                    media_type="application/json")


# --- pages -----------------------------------------------------------------------------

async def home(request: Request) -> Response:
    return RedirectResponse(request.url_for("imaging_worklist"), status_code=303)


@translated
async def worklist_page(request: Request) -> Response:
    from hygie.web.pages import render

    principal = _may_read(request, search=True)
    return render(request, "imaging/worklist.html", {"admin": _is_admin(principal)})


@translated
async def viewer_page(request: Request) -> Response:
    from hygie.web.pages import render

    _may_read(request)
    return render(request, "imaging/viewer.html", {
        "study_uid": request.path_params["study"],
        "series_uid": request.query_params.get("series", "")})


def routes() -> list[BaseRoute]:
    """The service's routes (mounted under /imaging by app.py)."""
    inst = "/dicomweb/studies/{study}/series/{series}/instances/{instance}"
    return [
        Route("/", home),
        Route("/worklist", worklist_page, name="imaging_worklist"),
        Route("/viewer/{study}", viewer_page),
        Mount("/assets", StaticFiles(directory=_STATIC), name="imaging_assets"),
        # STOW-RS
        Route("/dicomweb/studies", stow, methods=["POST"]),
        Route("/dicomweb/studies/{study}", stow, methods=["POST"]),
        # QIDO-RS
        Route("/dicomweb/studies", _qido("study"), methods=["GET"]),
        Route("/dicomweb/series", _qido("series"), methods=["GET"]),
        Route("/dicomweb/instances", _qido("instance"), methods=["GET"]),
        Route("/dicomweb/studies/{study}/series", _qido("series"), methods=["GET"]),
        Route("/dicomweb/studies/{study}/instances", _qido("instance"), methods=["GET"]),
        Route("/dicomweb/studies/{study}/series/{series}/instances", _qido("instance"),
              methods=["GET"]),
        # WADO-RS
        Route("/dicomweb/studies/{study}", retrieve, methods=["GET"]),
        Route("/dicomweb/studies/{study}/metadata", metadata, methods=["GET"]),
        Route("/dicomweb/studies/{study}/series/{series}", retrieve, methods=["GET"]),
        Route("/dicomweb/studies/{study}/series/{series}/metadata", metadata, methods=["GET"]),
        Route(inst, retrieve, methods=["GET"]),
        Route(inst + "/metadata", metadata, methods=["GET"]),
        Route(inst + "/frames/{frames}", frames, methods=["GET"]),
        Route(inst + "/rendered", rendered, methods=["GET"]),
        Route(inst + "/frames/{frame:int}/rendered", rendered, methods=["GET"]),
        Route(inst + "/bulkdata/{tag}", bulkdata, methods=["GET"]),
        # viewer API
        Route("/api/worklist", worklist, methods=["GET"]),
        Route("/api/studies/{study}/assignments", assign, methods=["POST"]),
        Route("/api/studies/{study}/reading", set_reading, methods=["PUT"]),
        Route("/api/studies/{study}/series", study_series, methods=["GET"]),
        Route("/api/series/{series}/volume", volume, methods=["GET"]),
        Route("/api/series/{series}/annotations", get_annotation, methods=["GET"]),
        Route("/api/series/{series}/annotations", put_annotation, methods=["PUT"]),
        Route("/api/series/{series}/quantification", get_quantification, methods=["GET"]),
        Route("/api/series/{series}/quantification", run_quantification, methods=["POST"]),
        Route("/api/series/{series}/quantification/labels", quantification_labels,
              methods=["GET"]),
    ]
