"""``hygie imaging ...``: phantoms, import, quantification and the DIMSE service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hygie.config import load_settings

if TYPE_CHECKING:
    from hygie.imaging.service import ImagingService


def _service(**overrides: Any) -> ImagingService:
    try:
        from hygie.imaging.model import ImagingSettings
        from hygie.imaging.service import ImagingService
    except ImportError as exc:
        raise click.ClickException(
            f"{exc.name} is missing: pip install 'hygie[imaging]'") from exc
    from hygie.platform import open_platform

    platform = open_platform(load_settings())
    settings = ImagingSettings.from_extra(platform.settings.extra)
    if overrides:
        from dataclasses import replace

        settings = replace(settings, **overrides)
    return ImagingService.for_platform(platform, settings)


def _shape(text: str) -> tuple[int, int, int]:
    try:
        n, r, c = (int(v) for v in text.split("x"))
    except ValueError as exc:
        raise click.BadParameter("give SLICESxROWSxCOLUMNS, e.g. 96x192x192") from exc
    if min(n, r, c) < 8 or max(r, c) > 1024 or n > 2000:
        raise click.BadParameter("sizes must be 8..1024 (rows, columns), 8..2000 slices")
    return n, r, c


@click.group(name="imaging")
def group() -> None:
    """DICOM archive (DICOMweb, DIMSE), reading and lung-lesion quantification."""


@group.command("phantom")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--shape", default="96x192x192", show_default=True,
              help="SLICESxROWSxCOLUMNS.")
@click.option("--slice-mm", default=3.0, show_default=True, help="Slice spacing (mm).")
@click.option("--fov-mm", default=380.0, show_default=True, help="Field of view (mm).")
@click.option("--lesions/--no-lesions", default=True, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--patient-id", default=None, help="DICOM Patient ID (default from the seed).")
def phantom(folder: Path, shape: str, slice_mm: float, fov_mm: float, lesions: bool,
            seed: int, patient_id: str | None) -> None:
    """Write a chest CT phantom series (one file per slice) and print its truth."""
    from hygie.imaging.phantom import PhantomSpec, generate_phantom, phantom_series, write_series

    spec = PhantomSpec(shape=_shape(shape), slice_thickness_mm=slice_mm,
                       field_of_view_mm=fov_mm, seed=seed,
                       patient_id=patient_id or f"PHANTOM-{seed:04d}",
                       **({} if lesions else {"lesions": ()}))
    drawn = generate_phantom(spec)
    paths = write_series(phantom_series(drawn), folder)
    click.echo(f"{len(paths)} slices written to {folder}")
    click.echo(f"lung volume: {drawn.lung_volume_ml:.1f} mL")
    click.echo(f"percentage of opacity: {drawn.percent_opacity:.2f} %")
    click.echo(f"percentage of high opacity: {drawn.percent_high_opacity:.2f} %")


@group.command("import")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--quantify/--no-quantify", default=False,
              help="Quantify the chest CT series imported, now.")
def import_files(paths: tuple[Path, ...], quantify: bool) -> None:
    """Store DICOM files (folders are walked) in the archive."""
    svc = _service(quantify_on_arrival=True, stable_s=0.0) if quantify else _service(
        quantify_on_arrival=False)
    svc.jobs.stop()
    files = [p for path in paths for p in ([path] if path.is_file() else sorted(
        q for q in path.rglob("*") if q.is_file()))]
    stored = failed = 0
    for start in range(0, len(files), 100):
        outcome = svc.archive.store([f.read_bytes() for f in files[start:start + 100]])
        stored += len(outcome.stored)
        failed += len(outcome.failed)
    click.echo(f"stored: {stored}  refused: {failed}")
    if quantify:
        ran = svc.jobs.run_due()
        click.echo(f"series quantified: {ran}")
    svc.platform.close()


@group.command("quantify")
@click.argument("series_uid")
def quantify_command(series_uid: str) -> None:
    """Quantify one stored series now; writes its SEG and DiagnosticReport."""
    from hygie.imaging.errors import ImagingError
    from hygie.imaging.lung_report import quantify_series

    svc = _service(quantify_on_arrival=False)
    try:
        done = quantify_series(svc.archive, svc.store, series_uid,
                               lung_weights=svc.settings.lung_weights)
    except ImagingError as exc:
        raise click.ClickException(exc.detail) from exc
    q = done.figures
    click.echo(f"lung volume: {q.lung_volume_ml:.1f} mL (right {q.right_lung_ml:.1f}, "
               f"left {q.left_lung_ml:.1f})")
    click.echo(f"opacity: {q.percent_opacity:.2f} %  high opacity: "
               f"{q.percent_high_opacity:.2f} %  well aerated: {q.percent_well_aerated:.2f} %")
    for z in q.zones:
        click.echo(f"  {z.side:5} {z.zone:6} {z.percent_opacity:6.2f} %  score {z.score}")
    click.echo(f"total score: {q.total_score}/30")
    click.echo(f"SEG: {done.seg_uid}  DiagnosticReport/{done.report_id}")
    svc.platform.close()


@group.command("dimse")
@click.option("--host", default=None, help="Address (default: [imaging] dimse_host).")
@click.option("--port", default=None, type=int, help="Port (default: [imaging] dimse_port).")
def dimse(host: str | None, port: int | None) -> None:
    """Serve C-ECHO, C-STORE, C-FIND and C-MOVE until interrupted."""
    from hygie.imaging.dimse import DimseServer

    svc = _service()
    svc.archive.flush()
    server = DimseServer(svc, host=host, port=port)
    click.echo(f"DICOM AE {server.ae_title} on {server.host}:{server.port}")
    try:
        server.serve_forever()
    finally:
        svc.platform.close()


@group.command("flush")
def flush() -> None:
    """Rewrite the ImagingStudy of studies changed since their last update."""
    svc = _service(quantify_on_arrival=False)
    click.echo(f"studies written: {svc.archive.flush()}")
    svc.platform.close()
