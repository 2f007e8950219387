"""DIMSE on loopback with pynetdicom peers: C-ECHO, C-STORE, C-FIND, C-MOVE."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from hygie.imaging.dimse import DimseServer
from hygie.imaging.phantom import Phantom, phantom_series
from hygie.imaging.service import ImagingService
from hygie.platform import Platform
from tests.imaging.conftest import make_service


@pytest.fixture
def destination() -> Iterator[tuple[int, list[Any]]]:
    """A storage SCP that C-MOVE sends to, keeping what it receives."""
    received: list[Any] = []

    def on_store(event: Any) -> int:
        received.append(event.dataset)
        return 0x0000

    ae = AE(ae_title="VIEWER")
    ae.add_supported_context(CTImageStorage)
    server = ae.start_server(("127.0.0.1", 0), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
    yield server.server_address[1], received
    server.shutdown()


@pytest.fixture
def dimse(sqlite_platform: Platform, destination: tuple[int, list[Any]]
          ) -> Iterator[tuple[DimseServer, ImagingService]]:
    svc = make_service(sqlite_platform, move_destinations={"VIEWER": ["127.0.0.1",
                                                                      destination[0]]})
    server = DimseServer(svc, port=0)
    server.start()
    yield server, svc
    server.stop()


def _scu() -> AE:
    ae = AE(ae_title="MODALITY")
    for context in (Verification, CTImageStorage, StudyRootQueryRetrieveInformationModelFind,
                    PatientRootQueryRetrieveInformationModelFind,
                    StudyRootQueryRetrieveInformationModelMove):
        ae.add_requested_context(context)
    return ae


def test_echo_store_find_move(dimse: tuple[DimseServer, ImagingService], tiny: Phantom,
                              destination: tuple[int, list[Any]]) -> None:
    server, svc = dimse
    series = phantom_series(tiny)
    assoc = _scu().associate("127.0.0.1", server.port, ae_title="HYGIE")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assert {assoc.send_c_store(ds).Status for ds in series} == {0x0000}

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = "TINY-1"
    query.PatientName = ""
    query.StudyInstanceUID = ""
    query.NumberOfStudyRelatedInstances = ""
    answers = [(s.Status, i) for s, i in
               assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)]
    assert [s for s, _ in answers] == [0xFF00, 0x0000]
    found = answers[0][1]
    assert str(found.PatientName) == "Petit^Fantome"
    assert found.StudyInstanceUID == series[0].StudyInstanceUID
    assert int(found.NumberOfStudyRelatedInstances) == 20

    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = series[0].StudyInstanceUID
    query.SeriesInstanceUID = series[0].SeriesInstanceUID
    query.SOPInstanceUID = ""
    query.InstanceNumber = "5"
    answers = [i for s, i in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
               if s.Status == 0xFF00]
    assert [a.SOPInstanceUID for a in answers] == [series[4].SOPInstanceUID]

    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.PatientID = "TINY*"
    query.PatientName = ""
    answers = [i for s, i in assoc.send_c_find(query, PatientRootQueryRetrieveInformationModelFind)
               if s.Status == 0xFF00]
    assert [a.PatientID for a in answers] == ["TINY-1"]

    move = Dataset()
    move.QueryRetrieveLevel = "SERIES"
    move.StudyInstanceUID = series[0].StudyInstanceUID
    move.SeriesInstanceUID = series[0].SeriesInstanceUID
    statuses = [s for s, _ in assoc.send_c_move(move, "VIEWER",
                                                StudyRootQueryRetrieveInformationModelMove)]
    assert statuses[-1].Status == 0x0000
    assert statuses[-1].NumberOfCompletedSuboperations == 20
    refused = [s.Status for s, _ in assoc.send_c_move(
        move, "STRANGER", StudyRootQueryRetrieveInformationModelMove)]
    assert refused == [0xA801]
    assoc.release()
    received = destination[1]
    assert sorted(d.SOPInstanceUID for d in received) == sorted(d.SOPInstanceUID for d in series)
    # The association's end wrote the ImagingStudy once, with every instance.
    for _ in range(50):
        studies = svc.store.repository.search("ImagingStudy", []).matches
        if studies and studies[0].resource["numberOfInstances"] == 20:
            break
        import time

        time.sleep(0.1)
    assert studies[0].resource["numberOfInstances"] == 20
    assert not svc.archive.study_row(str(series[0].StudyInstanceUID)).fhir_dirty


def test_store_refuses_an_instance_without_uids(dimse: tuple[DimseServer, ImagingService],
                                                tiny: Phantom) -> None:
    server, _ = dimse
    ds = phantom_series(tiny)[0]
    ds.StudyInstanceUID = ""
    assoc = _scu().associate("127.0.0.1", server.port, ae_title="HYGIE")
    assert assoc.send_c_store(ds).Status == 0xA900
    assoc.release()
