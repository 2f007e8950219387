"""The imaging service of one platform: archive, FHIR side, job queue and worker.

``ImagingService.for_platform`` builds it once and keeps it in
``platform.parts["imaging"]``; routes, the DIMSE server and the CLI all use that one
object. The quantification worker starts with it when ``quantify_on_arrival`` is set
and stops when the platform closes.
"""

from __future__ import annotations

import threading
from typing import Any

from hygie.imaging import fhir_records
from hygie.imaging.archive import Archive
from hygie.imaging.files import InstanceFiles, LocalInstanceFiles, SealedInstanceFiles
from hygie.imaging.jobs import JobQueue
from hygie.imaging.model import ImagingSettings
from hygie.platform import Platform
from hygie.store.interactions import StoreContext

__all__ = ["ImagingService"]

_BUILD_LOCK = threading.Lock()
def _instance_files(platform: Platform, settings: ImagingSettings) -> InstanceFiles:
    """Plain files, sealed with the store's vault when encryption at rest is on."""
    plain = LocalInstanceFiles(platform.settings.var_dir / "imaging" / "files",
                               fsync=settings.fsync)
    from hygie.security import vault_for

    codec = vault_for(platform)
    return SealedInstanceFiles(plain, codec) if codec is not None else plain


class ImagingService:
    """Everything the routes, DIMSE and CLI of the imaging service share."""

    def __init__(self, platform: Platform, settings: ImagingSettings | None = None, *,
                 files: InstanceFiles | None = None) -> None:
        self.platform = platform
        self.settings = settings or ImagingSettings.from_extra(platform.settings.extra)
        self.files = files or _instance_files(platform, self.settings)
        self._store: StoreContext | None = None
        self.jobs = JobQueue(platform.engine, stable_s=self.settings.stable_s,
                             run=self._run_job)
        self.archive = Archive(
            platform.engine, self.files, sync_study=self._sync_study,
            enqueue=self.jobs.enqueue if self.settings.quantify_on_arrival else None)

    @classmethod
    def for_platform(cls, platform: Platform, settings: ImagingSettings | None = None
                     ) -> ImagingService:
        """The platform's service, built on first use (worker started if configured)."""
        found = platform.parts.get("imaging")
        if found is not None:
            return found  # type: ignore[no-any-return]
        with _BUILD_LOCK:
            found = platform.parts.get("imaging")
            if found is None:
                found = cls(platform, settings)
                platform.parts["imaging"] = found
                # Closers run newest first: stop the worker, then finish pending rewrites.
                platform.closers.append(found.archive.drain)
                if found.settings.quantify_on_arrival:
                    found.jobs.start()
                    platform.closers.append(found.jobs.stop)
        return found  # type: ignore[no-any-return]

    @property
    def store(self) -> StoreContext:
        if self._store is None:
            found = self.platform.parts.get("store")
            if found is None:
                from hygie.store.server import open_store

                found = open_store(self.platform)
            self._store = found
        return self._store

    def _sync_study(self, study_uid: str) -> None:
        fhir_records.sync_study(self.platform.engine, self.store, study_uid,
                                self.settings.patient_system)

    def _run_job(self, series_uid: str) -> dict[str, Any]:
        from hygie.imaging.lung_report import quantify_series

        done = quantify_series(self.archive, self.store, series_uid,
                               lung_weights=self.settings.lung_weights)
        return done.as_result()
