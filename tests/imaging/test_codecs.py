"""Compressed transfer syntaxes: stored as received, decoded for frames, rendering,
transcoding and quantification, by pylibjpeg and GDCM."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless
from starlette.testclient import TestClient

from hygie.imaging.lung_report import load_volume
from hygie.imaging.multipart import parse_multipart
from hygie.imaging.phantom import Phantom, phantom_series
from hygie.imaging.service import ImagingService
from tests.imaging.conftest import multipart, part10

DW = "/imaging/dicomweb"
SYNTAXES = [RLELossless, JPEG2000Lossless, JPEGLSLossless]
#: Decoders checked for each syntax (pydicom decodes RLE itself; GDCM does not offer it).
PLUGINS = {RLELossless: ("pylibjpeg", "pydicom"), JPEG2000Lossless: ("pylibjpeg", "gdcm"),
           JPEGLSLossless: ("pylibjpeg", "gdcm")}


def _compressed(tiny: Phantom, syntax: str) -> list[bytes]:
    out = []
    for ds in phantom_series(tiny):
        ds.compress(syntax)
        out.append(part10(ds))
    return out


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_both_decoders_read_the_syntax(tiny: Phantom, syntax: str) -> None:
    ds = dcmread(io.BytesIO(_compressed(tiny, syntax)[3]))
    decoder = get_decoder(syntax)
    assert set(PLUGINS[syntax]) <= set(decoder.available_plugins)
    for plugin in PLUGINS[syntax]:
        assert np.array_equal(pixel_array(ds, decoding_plugin=plugin), tiny.hu[3])


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_compressed_series_over_dicomweb(client: TestClient, service: ImagingService,
                                         tiny: Phantom, syntax: str) -> None:
    files = _compressed(tiny, syntax)
    body, ctype = multipart(files)
    assert client.post(f"{DW}/studies", content=body,
                       headers={"Content-Type": ctype}).status_code == 200
    first = dcmread(io.BytesIO(files[0]))
    inst = (f"{DW}/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}/"
            f"instances/{first.SOPInstanceUID}")
    # Frames: decoded to native pixels by default, the stored bitstream on request.
    r = client.get(f"{inst}/frames/1")
    _, (frame,) = parse_multipart(r.content, r.headers["content-type"])
    assert np.array_equal(np.frombuffer(frame.content, "<i2").reshape(64, 64), tiny.hu[0])
    r = client.get(f"{inst}/frames/1", headers={
        "Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'})
    _, (raw,) = parse_multipart(r.content, r.headers["content-type"])
    assert f"transfer-syntax={syntax}" in raw.headers["content-type"]
    assert raw.content != frame.content
    # Instances: transcoded to Explicit VR Little Endian unless the client takes any.
    r = client.get(inst)
    _, (part,) = parse_multipart(r.content, r.headers["content-type"])
    plain = dcmread(io.BytesIO(part.content))
    assert plain.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(plain.pixel_array, tiny.hu[0])
    r = client.get(inst, headers={"Accept": 'multipart/related; type="application/dicom"; '
                                            f"transfer-syntax={syntax}"})
    assert parse_multipart(r.content, r.headers["content-type"])[1][0].content == files[0]
    assert client.get(f"{inst}/rendered").headers["content-type"] == "image/png"
    # The quantification reads compressed series too.
    volume, _ = load_volume(service.archive, str(first.SeriesInstanceUID))
    assert np.array_equal(volume.hu, tiny.hu)
