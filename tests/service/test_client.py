"""The Python client and the CLI against the real app served by uvicorn (in a thread)."""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from helpers.service import (
    ADMIN, CLASSES, LABELSET_PARAMS, dataset_body, nnunet_folder, run_burst_workers, write_tiny_study,
)  # fmt: skip
from softlabel.cli.main import app as softlabel
from softlabel.service.app import create_app
from softlabel.service.client import ApiError, ChecksumError, SoftlabelClient

pytestmark = pytest.mark.redis


@pytest.fixture
def server(settings) -> Iterator[str]:
    """uvicorn serving the app on a free port; yields the API root URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    while not instance.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(10)


@pytest.fixture
def client(server) -> Iterator[SoftlabelClient]:
    with SoftlabelClient(server, ADMIN) as c:
        yield c


@pytest.mark.slow
def test_client_upload_watch_manifest_and_verified_resumable_downloads(client, settings, tmp_path):
    body = dataset_body("d1")
    client.create_dataset(name=body["name"], labels=body["labels"], channel_names=body["channel_names"], dataset_id="d1")
    folder = nnunet_folder(tmp_path / "raw", 3)
    assert len(client.upload_folder("d1", folder)) == 3
    assert client.upload_folder("d1", folder) == []  # only new cases are uploaded
    assert [s["case_id"] for s in client.iter_studies("d1", page_size=2)] == ["case_000", "case_001", "case_002"]
    client.create_labelset("d1", "sp", params=LABELSET_PARAMS)
    run_burst_workers(settings, log_dir=tmp_path / "workers")
    state = client.watch("d1", "sp", timeout_s=30)
    assert state["counts"]["finished"] == 3

    manifest = client.manifest("d1", "sp")
    assert manifest["dataset"]["num_classes"] == CLASSES and len(manifest["studies"]) == 3
    soft = manifest["studies"][0]["soft"]
    whole = client.download(soft["url"], tmp_path / "full.nii.gz", sha256=soft["sha256"])
    content = whole.read_bytes()
    assert hashlib.sha256(content).hexdigest() == soft["sha256"]

    # An interrupted download resumes from its .part file with a Range request.
    target = tmp_path / "resumed.nii.gz"
    (tmp_path / "resumed.nii.gz.part").write_bytes(content[:1000])
    requests = []
    client.http.event_hooks["request"] = [lambda request: requests.append(request.headers.get("range"))]
    client.download(soft["url"], target, sha256=soft["sha256"])
    client.http.event_hooks["request"] = []
    assert requests == ["bytes=1000-"] and target.read_bytes() == content

    (tmp_path / "bad.nii.gz.part").write_bytes(b"garbage that is not the start of the file")
    with pytest.raises(ChecksumError):
        client.download(soft["url"], tmp_path / "bad.nii.gz", sha256=soft["sha256"])
    assert not (tmp_path / "bad.nii.gz.part").exists()

    paths = client.download_labelset("d1", "sp", tmp_path / "out", what=("soft", "superpixels", "preview.png"))
    assert sorted(p.name for p in paths)[:3] == ["case_000.nii.gz", "case_000_preview.png", "case_000_superpixels.nii.gz"]
    with pytest.raises(ApiError) as err:
        client.get_study("d1", "nope")
    assert err.value.status == 404 and "nope" in err.value.detail


def test_importing_an_nnunet_zip(client, settings, tmp_path):
    folder = nnunet_folder(tmp_path / "Dataset007_Phantom", 2)
    archive = Path(shutil.make_archive(str(tmp_path / "phantom"), "zip", tmp_path, folder.name))
    created = client.import_dataset(archive)
    assert created["id"] == "Dataset007_Phantom" and created["num_studies"] == 2 and created["num_classes"] == CLASSES
    study = client.get_study("Dataset007_Phantom", "case_001")
    assert study["images"][1]["sha256"] == hashlib.sha256((folder / "imagesTr" / "case_001_0001.nii.gz").read_bytes()).hexdigest()
    with pytest.raises(ApiError) as again:
        client.import_dataset(archive)
    assert again.value.status == 409

    before = sorted(p.name for p in (settings.data_dir / "datasets").iterdir())

    def bad_zip(name: str, entries: dict[str, bytes]) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            for entry, content in entries.items():
                zf.writestr(entry, content)
        return path

    good = {f"X/{p.relative_to(folder)}": p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    broken_label = dict(good)
    broken_label["X/labelsTr/case_001.nii.gz"] = good["X/labelsTr/case_001.nii.gz"][:200]
    for archive_path, status, says in (
        (bad_zip("escape.zip", good | {"../evil.txt": b"x"}), 422, "relative paths"),
        (bad_zip("empty.zip", {"readme.txt": b"no dataset here"}), 422, "dataset.json"),
        (bad_zip("broken.zip", broken_label), 422, "case_001.nii.gz"),
    ):
        with pytest.raises(ApiError) as err:
            client.import_dataset(archive_path, dataset_id="other")
        assert err.value.status == status and says in err.value.detail, err.value.detail
    not_zip = tmp_path / "notes.zip"
    not_zip.write_bytes(b"plain text")
    with pytest.raises(ApiError) as err:
        client.import_dataset(not_zip)
    assert err.value.status == 422 and "zip archive" in err.value.detail
    assert sorted(p.name for p in (settings.data_dir / "datasets").iterdir()) == before  # nothing left over


@pytest.mark.slow
def test_cli_commands_a_labeling_team_uses(server, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTLABEL_API_URL", server)
    monkeypatch.setenv("SOFTLABEL_TOKEN", ADMIN)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(softlabel, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    run("datasets", "create", "Phantoms", "--id", "ph", "--labels", "background=0,c1=1,c2=2,c3=3,c4=4", "--channels", "A,B")
    folder = nnunet_folder(tmp_path / "raw", 2)
    assert "2 new studies" in run("studies", "upload", "ph", "--folder", str(folder))
    run("labelsets", "create", "ph", "sp", "--param", "n_segments=30")
    run_burst_workers(settings, log_dir=tmp_path / "workers")
    assert "2/2 finished" in run("labelsets", "status", "ph", "sp")
    assert "2/2 finished" in run("labelsets", "watch", "ph", "sp")
    run("labelsets", "download", "ph", "sp", "--out", str(tmp_path / "out"), "--preview")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "case_000.nii.gz", "case_000_preview.png", "case_001.nii.gz", "case_001_preview.png", "manifest.json",
    ]  # fmt: skip
    token = run("tokens", "create", "reader", "--scope", "read")
    assert '"scopes": [\n    "read"' in token
    failed = runner.invoke(softlabel, ["datasets", "create", "X", "--labels", "background=0,a=2", "--channels", "A"])
    assert failed.exit_code == 1 and "0..K-1" in failed.output
