"""WADO-RS retrieval (PS3.18 §10.4): instances, metadata, frames, bulk data, rendered.

Content negotiation follows PS3.18 §8.7: instances go out as
``multipart/related; type="application/dicom"`` in the transfer syntax asked for
(``transfer-syntax=*`` means as stored; no parameter means Explicit VR Little
Endian, so a compressed instance is decoded unless the client accepts its syntax);
frames as ``application/octet-stream`` (native pixels) or, with ``*`` or a matching
syntax, the stored compressed frame under its image media type. Compressed syntaxes
are decoded by pydicom's plugins: pylibjpeg (JPEG, JPEG-LS, JPEG 2000, RLE) and GDCM.
Rendered images (§8.3.5 / §9.5) apply a VOI window (``window=center,width``, else
the header's, else the image's range) and are encoded as PNG or JPEG.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hygie.imaging.archive import Archive
from hygie.imaging.errors import InvalidRequest, NotAcceptable, NotFound
from hygie.imaging.multipart import content_type_params

__all__ = ["Accept", "parse_accept", "render_frame", "retrieve_frames", "transcode"]

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
#: Media type of a compressed frame, by transfer syntax (PS3.18 Table 8.7.3-2).
FRAME_MEDIA = {
    "1.2.840.10008.1.2.4.50": "image/jpeg", "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls", "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc", "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc", "1.2.840.10008.1.2.5": "image/dicom-rle",
}
_NATIVE = {EXPLICIT_LE, IMPLICIT_LE, "1.2.840.10008.1.2.2"}


@dataclass(frozen=True)
class Accept:
    """One acceptable representation: media type, multipart ``type`` and syntax."""

    media: str
    part_type: str | None
    transfer_syntax: str | None
    q: float = 1.0


def parse_accept(header: str | None, default: Accept) -> list[Accept]:
    """The Accept header as a list, best first; the default when absent or ``*/*``."""
    if not header or not header.strip():
        return [default]
    out = []
    for item in header.split(","):
        media, params = content_type_params(item)
        if not media:
            continue
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        if media in ("*/*", "multipart/*"):
            out.append(Accept(default.media, default.part_type, default.transfer_syntax, q))
            continue
        out.append(Accept(media, params.get("type", "").lower() or None,
                          params.get("transfer-syntax"), q))
    out.sort(key=lambda a: -a.q)
    return [a for a in out if a.q > 0] or [default]


def choose_instance_syntax(accepts: list[Accept]) -> str | None:
    """The transfer syntax for instances (``*``: as stored), or NotAcceptable."""
    for a in accepts:
        if a.media == "multipart/related" and a.part_type in (None, "application/dicom"):
            return a.transfer_syntax or EXPLICIT_LE
        if a.media == "application/dicom":
            return a.transfer_syntax or EXPLICIT_LE
    raise NotAcceptable('instances are served as multipart/related; type="application/dicom"')


def check_syntax(rows: list[Any], syntax: str) -> None:
    """Refuse, before streaming starts, a syntax some instance cannot be served in."""
    if syntax in ("*", EXPLICIT_LE):
        return
    if any(row.transfer_syntax_uid != syntax for row in rows):
        raise NotAcceptable(f"transcoding to {syntax} is not offered; ask for "
                            f"{EXPLICIT_LE} or transfer-syntax=*")


def transcode(archive: Archive, row: Any, syntax: str) -> tuple[str, bytes]:
    """The instance's file in ``syntax`` (``*``: as stored); (syntax, bytes)."""
    stored = row.transfer_syntax_uid
    if syntax in ("*", stored):
        return stored, archive.read(row)
    if syntax != EXPLICIT_LE:
        raise NotAcceptable(f"transcoding to {syntax} is not offered; ask for "
                            f"{EXPLICIT_LE} or transfer-syntax=*")
    ds = archive.dataset(row)
    if stored not in _NATIVE and "PixelData" in ds:
        ds.decompress()
    ds.file_meta.TransferSyntaxUID = EXPLICIT_LE
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return EXPLICIT_LE, buffer.getvalue()


def iter_instances(archive: Archive, rows: list[Any], syntax: str
                   ) -> Iterator[tuple[str, bytes]]:
    """(part content type, bytes) per instance, read one at a time."""
    for row in rows:
        ts, data = transcode(archive, row, syntax)
        yield f"application/dicom; transfer-syntax={ts}", data


def parse_frame_list(text: str, count: int) -> list[int]:
    """``1,3,5`` -> [1, 3, 5], each within 1..count (PS3.18 §10.4.1.1.3)."""
    try:
        frames = [int(f) for f in text.split(",") if f.strip()]
    except ValueError as exc:
        raise InvalidRequest(f"frame list {text!r} is not a list of integers") from exc
    if not frames:
        raise InvalidRequest("the frame list is empty")
    bad = [f for f in frames if f < 1 or f > count]
    if bad:
        raise NotFound(f"frame {bad[0]} does not exist (the instance has {count})")
    return frames


def _native_frame_bytes(ds: Any, index: int) -> bytes:
    """Frame ``index`` (0-based) of a native-encoded dataset, as stored (little endian)."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    spp = int(getattr(ds, "SamplesPerPixel", 1))
    bits = int(ds.BitsAllocated)
    if bits == 1:
        arr = frame_array(ds, index)
        return np.packbits(arr.astype(np.uint8).ravel(), bitorder="little").tobytes()
    size = rows * cols * spp * bits // 8
    data = ds.PixelData
    return bytes(data[index * size:(index + 1) * size])


def frame_array(ds: Any, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) decoded to an array (stored values)."""
    from pydicom.pixels import pixel_array

    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if n == 1:
        return np.asarray(ds.pixel_array)
    return np.asarray(pixel_array(ds, index=index))


def retrieve_frames(archive: Archive, row: Any, frames: list[int], accepts: list[Accept]
                    ) -> Iterator[tuple[str, bytes]]:
    """(content type, bytes) per requested frame, in the representation accepted."""
    from pydicom.encaps import generate_frames

    ds = archive.dataset(row)
    stored = row.transfer_syntax_uid
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    want_native = True
    for a in accepts:
        part = a.part_type if a.media == "multipart/related" else a.media
        if part in (None, "application/octet-stream"):
            want_native = not (a.transfer_syntax == "*" and stored not in _NATIVE)
            break
        if stored in FRAME_MEDIA and part == FRAME_MEDIA[stored] and \
                a.transfer_syntax in (None, "*", stored):
            want_native = False
            break
    else:
        raise NotAcceptable("frames are served as application/octet-stream or in their "
                            "stored compressed media type")
    if stored in _NATIVE and stored != "1.2.840.10008.1.2.2":
        for f in frames:
            yield f"application/octet-stream; transfer-syntax={EXPLICIT_LE}", \
                _native_frame_bytes(ds, f - 1)
        return
    if not want_native and stored not in _NATIVE:
        encoded = list(generate_frames(ds.PixelData, number_of_frames=n))
        for f in frames:
            yield f"{FRAME_MEDIA.get(stored, 'application/octet-stream')}; " \
                  f"transfer-syntax={stored}", encoded[f - 1]
        return
    for f in frames:
        arr = frame_array(ds, f - 1)
        dtype = arr.dtype.newbyteorder("<")
        yield f"application/octet-stream; transfer-syntax={EXPLICIT_LE}", \
            arr.astype(dtype).tobytes()


def _first(value: Any) -> float:
    """The first value of a possibly multi-valued DS element."""
    if hasattr(value, "__len__") and not isinstance(value, str):
        return float(value[0])
    return float(value)


def _voi(ds: Any, window: str | None, values: np.ndarray) -> tuple[float, float]:
    if window:
        try:
            center, width = (float(v) for v in window.split(",")[:2])
        except ValueError as exc:
            raise InvalidRequest("window must be center,width[,function]") from exc
        if width <= 0:
            raise InvalidRequest("the window width must be positive")
        return center, width
    wc, ww = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    if wc is not None and ww is not None:
        return _first(wc), max(1.0, _first(ww))
    lo, hi = float(values.min()), float(values.max())
    return (lo + hi) / 2.0, max(1.0, hi - lo)


def render_frame(archive: Archive, row: Any, frame: int, accepts: list[Accept],
                 window: str | None = None, viewport: str | None = None,
                 quality: int = 90) -> tuple[str, bytes]:
    """One frame as a windowed PNG or JPEG; (media type, bytes)."""
    from PIL import Image

    media = None
    for a in accepts:
        if a.media in ("image/png", "image/jpeg"):
            media = a.media
            break
        if a.media in ("image/*", "*/*"):
            media = "image/png"
            break
    if media is None:
        raise NotAcceptable("rendered images are image/png or image/jpeg")
    ds = archive.dataset(row)
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frame < 1 or frame > n:
        raise NotFound(f"frame {frame} does not exist (the instance has {n})")
    arr = frame_array(ds, frame - 1).astype(np.float32)
    if arr.ndim == 2:
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
        arr = arr * slope + intercept
        center, width = _voi(ds, window, arr)
        low = center - width / 2.0
        scaled = np.clip((arr - low) / width, 0.0, 1.0) * 255.0
        if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
            scaled = 255.0 - scaled
        image = Image.fromarray(scaled.astype(np.uint8), "L")
    else:
        image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if viewport:
        try:
            vw, vh = (int(v) for v in viewport.split(",")[:2])
        except ValueError as exc:
            raise InvalidRequest("viewport must be width,height") from exc
        if not (0 < vw <= 4096 and 0 < vh <= 4096):
            raise InvalidRequest("viewport sizes must be within 1..4096")
        image.thumbnail((vw, vh))
    buffer = io.BytesIO()
    if media == "image/jpeg":
        image.save(buffer, "JPEG", quality=max(1, min(100, quality)))
    else:
        image.save(buffer, "PNG")
    return media, buffer.getvalue()


def bulkdata(archive: Archive, row: Any, tag: str) -> bytes:
    """The value of a top-level bulk data element (pixel data: native, all frames)."""
    try:
        number = int(tag, 16)
    except ValueError as exc:
        raise InvalidRequest(f"{tag!r} is not a tag") from exc
    ds = archive.dataset(row)
    if number == 0x7FE00010:
        if "PixelData" not in ds:
            raise NotFound("the instance has no pixel data")
        if row.transfer_syntax_uid not in _NATIVE:
            ds.decompress()
        return bytes(ds.PixelData)
    if number not in ds:
        raise NotFound(f"the instance has no element {tag}")
    value = ds[number].value
    if not isinstance(value, bytes | bytearray):
        raise NotFound(f"element {tag} is not bulk data")
    return bytes(value)
