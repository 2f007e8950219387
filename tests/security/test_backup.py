"""Backup and restore: consistent, sealed, and the restored store has the same content hash."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from hygie.security.backup import BackupError, backup, content_hash, restore
from hygie.security.encryption import LocalMasterKey
from hygie.security.installation import install
from hygie.security.users import create_user
from hygie.store.schema import resource
from hygie.store.server import open_store
from tests.security.territory import app_and_platform, client_for, make_platform, staff


@pytest.fixture
def other_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database on the same engine, for the restore (dropped after the test)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    import uuid

    import psycopg

    from tests.conftest import POSTGRES_URL

    server = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    schema = "r_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_backup_then_restore_gives_the_same_content(database_url: str, other_url: str,
                                                     tmp_path: Path) -> None:
    for app, platform in app_and_platform(database_url, tmp_path / "a"):
        create_user(platform.engine, "amartin", "correct horse battery staple",
                    display="Alice Martin", kind="practitioner", scopes="user/*.rs")
        nurse = client_for(app, platform, staff("petit", {"nurse"}, "chu", "Practitioner/petit"))
        nurse.get("/fhir/Patient/anne")
        platform.parts["security"].audit_writer.close()
        master = install(platform).master_key
        before = content_hash(platform.engine)
        report = backup(platform.engine, tmp_path / "h.backup", master)
        assert report.content_hash == before and report.tables["resource"] >= 14
        assert b"Lefebvre" not in (tmp_path / "h.backup").read_bytes()  # sealed, indexes too
        target = make_platform(other_url, tmp_path / "b")
        try:
            restored = restore(target.engine, tmp_path / "h.backup", master)
            assert restored.content_hash == before == content_hash(target.engine)
            # the restored store works: bodies open with the same master key
            target.parts["security.master_key"] = master
            install(target)
            repo = open_store(target).repository
            assert repo.read("Patient", "anne").resource["name"][0]["given"] == ["Anne"]
            assert repo.search("Patient", [("name", "lefebvre")]).matches[0].res_id == "anne"
            created = repo.create({"resourceType": "Organization", "name": "new"})
            assert created.stored.res_id  # sequences moved past the restored keys
            with pytest.raises(BackupError, match="not empty"):
                restore(target.engine, tmp_path / "h.backup", master)
        finally:
            target.close()


def test_a_backup_needs_its_master_key_and_all_its_chunks(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var")
    try:
        master = install(platform).master_key
        repo = open_store(platform).repository
        for n in range(50):
            repo.create({"resourceType": "Patient", "name": [{"family": f"F{n}" * 4000}]})
        backup(platform.engine, tmp_path / "h.backup", master)
        data = (tmp_path / "h.backup").read_bytes()
    finally:
        platform.close()
    target = make_platform(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "var2")
    try:
        with pytest.raises(BackupError, match="wrong master key"):
            restore(target.engine, tmp_path / "h.backup", LocalMasterKey(b"\x02" * 32))
        (tmp_path / "cut.backup").write_bytes(data[: len(data) // 2])
        with pytest.raises(BackupError, match="truncated"):
            restore(target.engine, tmp_path / "cut.backup", master)
        with target.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(resource)).scalar() == 0
    finally:
        target.close()


def test_backup_is_consistent_while_writes_go_on(tmp_path: Path) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var")
    try:
        master = install(platform).master_key
        repo = open_store(platform).repository
        stop = threading.Event()

        def write() -> None:
            while not stop.is_set():
                repo.create({"resourceType": "Patient", "gender": "other"})

        thread = threading.Thread(target=write)
        thread.start()
        try:
            report = backup(platform.engine, tmp_path / "h.backup", master)
        finally:
            stop.set()
            thread.join()
        # within the snapshot every resource has its index rows and its version row
        assert report.tables["resource"] == report.tables["resource_version"]
        target = make_platform(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "var2")
        try:
            assert restore(target.engine, tmp_path / "h.backup", master).content_hash == \
                report.content_hash
        finally:
            target.close()
    finally:
        platform.close()


def test_backup_and_restore_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hygie.cli import main

    source = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var")
    open_store(source).repository.create({"resourceType": "Patient", "gender": "male"})
    source.close()
    monkeypatch.setenv("HYGIE_DATABASE_URL", f"sqlite:///{tmp_path / 'h.db'}")
    monkeypatch.setenv("HYGIE_VAR_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(main, ["backup", str(tmp_path / "out.backup")])
    assert result.exit_code == 0, result.output
    digest = result.output.split("content hash: ")[1].strip()
    monkeypatch.setenv("HYGIE_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    result = CliRunner().invoke(main, ["restore", str(tmp_path / "out.backup")])
    assert result.exit_code == 0, result.output
    assert f"content hash: {digest} (matches the backup)" in result.output


def test_a_backup_that_cannot_be_written_says_why_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hygie.cli import main

    make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var").close()
    monkeypatch.setenv("HYGIE_DATABASE_URL", f"sqlite:///{tmp_path / 'h.db'}")
    monkeypatch.setenv("HYGIE_VAR_DIR", str(tmp_path / "var"))
    missing = tmp_path / "nowhere" / "out.backup"
    result = CliRunner().invoke(main, ["backup", str(missing)])
    assert result.exit_code == 1
    assert f"cannot write {missing}: folder {missing.parent} does not exist" in result.output
    # cut short half way: the temporary file goes too
    source = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var")

    def boom(*_args: object) -> Iterator[tuple[object, ...]]:
        raise OSError(28, "No space left on device")
        yield ()

    monkeypatch.setattr("hygie.security.backup._ordered_rows", boom)
    with pytest.raises(OSError, match="No space left"):
        backup(source.engine, tmp_path / "cut.backup", LocalMasterKey(b"k" * 32))
    source.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "backup" in p.name) == []
