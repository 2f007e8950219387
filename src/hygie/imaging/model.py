"""Data types of the imaging service: quantification results, stored objects, readings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["InstanceRecord", "Quantification", "ReadingStatus", "StoreOutcome", "ZoneResult"]


@dataclass(frozen=True)
class ZoneResult:
    """One zone (upper, middle or lower third of one lung): volumes in mL, opacity, score."""

    side: str
    zone: str
    lung_ml: float
    ground_glass_ml: float
    consolidation_ml: float
    percent_opacity: float
    score: int


@dataclass(frozen=True)
class Quantification:
    """Lung-lesion figures of one chest CT (volumes in mL, percentages of lung volume)."""

    lung_volume_ml: float
    right_lung_ml: float
    left_lung_ml: float
    ground_glass_ml: float
    consolidation_ml: float
    percent_opacity: float
    percent_high_opacity: float
    percent_well_aerated: float
    lesion_count: int
    zones: tuple[ZoneResult, ...]
    total_score: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReadingStatus(StrEnum):
    """Where one reader is with one study (the worklist's column)."""

    ASSIGNED = "assigned"
    IN_PROGRESS = "in-progress"
    DONE = "done"


@dataclass(frozen=True)
class InstanceRecord:
    """One stored instance as the index knows it."""

    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    transfer_syntax_uid: str
    file_key: str
    size: int
    number_of_frames: int
    instance_number: int | None = None


@dataclass
class StoreOutcome:
    """What one store request did, instance by instance (PS3.18 10.5.3)."""

    stored: list[InstanceRecord] = field(default_factory=list)
    #: (SOP Class UID, SOP Instance UID, failure reason code, why) of refused instances.
    failed: list[tuple[str, str, int, str]] = field(default_factory=list)
    #: Studies whose ImagingStudy was written by this request.
    studies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImagingSettings:
    """The service's settings, from ``[imaging]`` in hygie.toml (``Settings.extra``).

    ``stable_s``: seconds without a new instance after which a series counts as
    complete and is quantified; ``max_upload_bytes``: largest STOW-RS body;
    ``ae_title``/``dimse_host``/``dimse_port``: the DIMSE service;
    ``move_destinations``: AE title -> [host, port] that C-MOVE may send to;
    ``lung_weights``: a lung-segmentation weights file supplied by the user (lungmask
    or TotalSegmentator format), used when present and its package is installed;
    ``patient_system``: the identifier system the DICOM Patient ID is a value of (the
    hospitals' IPP by default), which ties a study to the patient's record.
    """

    quantify_on_arrival: bool = True
    stable_s: float = 30.0
    max_upload_bytes: int = 2 * 1024 * 1024 * 1024
    ae_title: str = "HYGIE"
    dimse_host: str = "127.0.0.1"
    dimse_port: int = 11112
    move_destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    lung_weights: str | None = None
    fsync: bool = True
    patient_system: str = "https://hygie.example/fhir/sid/ipp"

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> ImagingSettings:
        raw = dict(extra.get("imaging", {}) or {})
        moves = {str(k): (str(v[0]), int(v[1]))
                 for k, v in (raw.pop("move_destinations", {}) or {}).items()}
        known = {f for f in cls.__dataclass_fields__ if f != "move_destinations"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown [imaging] settings: {', '.join(sorted(unknown))}")
        return cls(move_destinations=moves, **raw)
