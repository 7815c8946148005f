"""Jobs through real RQ worker processes: engine equality, batches, retries, cancels, stops, reuse."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import zlib

import nibabel as nib
import numpy as np
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from helpers.service import (
    BIG,
    CLASSES,
    LABELSET_PARAMS,
    multipart,
    run_burst_workers,
    start_slow_job,
    start_worker,
    wait_for_end,
    wait_for_stage,
    write_tiny_study,
)  # fmt: skip
from softlabel.service.queue import clear_stop_requests, request_stop
from softlabel.worker import __version__
from softlabel.worker.engine.config import SofteningConfig
from softlabel.worker.engine.pipeline import soften_files
from softlabel.worker.jobs.contract import STOP_KEY, STOP_TTL_S
from softlabel.worker.jobs.stop import stop_requested

pytestmark = pytest.mark.redis


def upload(api, dataset, files, case_id=None):
    parts, data = multipart(files, case_id=case_id)
    response = api.post(f"/v1/datasets/{dataset}/studies", files=parts, data=data)
    assert response.status_code == 201, response.text
    return response.json()


def counts(api, dataset, name):
    return api.get(f"/v1/datasets/{dataset}/labelsets/{name}").json()["counts"]


@pytest.mark.slow
def test_soft_label_of_an_uploaded_study_equals_the_engine_output(api, dataset, settings, tmp_path):
    files = write_tiny_study(tmp_path / "in", "c001", seed=3)
    uploaded = upload(api, dataset, files)
    created = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS})
    assert created.status_code == 202 and created.json()["enqueued"] == 1
    run_burst_workers(settings, log_dir=tmp_path)

    assert counts(api, dataset, "sp") | {"total": 1} == {
        "queued": 0, "running": 0, "finished": 1, "failed": 0, "canceled": 0, "missing": 0, "total": 1,
    }  # fmt: skip
    soft_bytes = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies/c001/soft").content
    (tmp_path / "service.nii.gz").write_bytes(soft_bytes)
    sp_bytes = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies/c001/superpixels").content
    (tmp_path / "service_sp.nii.gz").write_bytes(sp_bytes)
    preview = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies/c001/preview.png")
    assert preview.headers["content-type"] == "image/png" and preview.content[:4] == b"\x89PNG"

    engine = soften_files(
        files.images, files.label, tmp_path / "engine.nii.gz", config=SofteningConfig(**LABELSET_PARAMS),
        num_classes=CLASSES, superpixels_out=tmp_path / "engine_sp.nii.gz", backend="cpu",
    )  # fmt: skip
    assert engine.backend == "cpu"
    ours, theirs = nib.load(tmp_path / "service.nii.gz"), nib.load(tmp_path / "engine.nii.gz")
    assert ours.shape == theirs.shape == (24, 28, 20, CLASSES)
    assert np.array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj))
    assert np.allclose(ours.affine, theirs.affine)
    assert np.array_equal(nib.load(tmp_path / "service_sp.nii.gz").get_fdata(), nib.load(tmp_path / "engine_sp.nii.gz").get_fdata())

    record = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies/c001/provenance").json()
    assert record["engine_version"] == __version__ and record["backend"] == "cpu" and record["attempt"] == 1
    assert record["params"] == SofteningConfig(**LABELSET_PARAMS).output_params()
    assert [i["sha256"] for i in record["inputs"]["images"]] == [i["sha256"] for i in uploaded["images"]]
    assert record["inputs"]["label"]["sha256"] == uploaded["label"]["sha256"]
    # On the CPU the channels are rescaled as they are read: no "rescale" stage of its own.
    assert {"read", "superpixels", "soften", "write", "preview", "total"} <= set(record["timings_s"])
    assert "rescale" not in record["timings_s"]

    job_id = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies").json()["data"][0]["job_id"]
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "finished" and job["attempts"] == 1 and job["error"] is None
    assert job["progress"] == {"stage": "done", "fraction": 1.0} and job["case_id"] == "c001"

    # Downloads answer HTTP Range requests.
    part = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies/c001/soft", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == soft_bytes[10:100]

    # Job payloads crossing Redis are (zlib-compressed) JSON, not pickle.
    raw = redis.Redis.from_url(settings.redis_url).hget(f"rq:job:{job_id}", "data")
    func, _, args, _ = json.loads(zlib.decompress(raw))
    assert func == "softlabel.worker.jobs.soften.soften_study" and args[0]["case_id"] == "c001"


@pytest.mark.slow
def test_twenty_studies_two_workers_none_computed_twice(api, dataset, settings, tmp_path):
    for index in range(20):
        upload(api, dataset, write_tiny_study(tmp_path / "in", f"s{index:02d}", seed=index))
    created = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS}).json()
    assert created["enqueued"] == 20 and created["counts"]["queued"] == 20
    logs = run_burst_workers(settings, 2, log_dir=tmp_path)

    assert counts(api, dataset, "sp")["finished"] == 20
    done = [len(re.findall(r"Successfully completed", log)) for log in logs]
    assert sum(done) == 20, done
    connection = redis.Redis.from_url(settings.redis_url)
    studies = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies", params={"page_size": 100}).json()["data"]
    for study in studies:
        job = Job.fetch(study["job_id"], connection=connection, serializer=JSONSerializer)
        assert job.meta["attempts"] == 1, study
    records = [json.loads(p.read_text()) for p in (settings.data_dir / "datasets" / dataset / "labelsets" / "sp").glob("*.json")]
    assert len(records) == 20 and {r["attempt"] for r in records} == {1}

    # Re-posting the same configuration recomputes nothing; a twin labelset reuses every result.
    again = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS}).json()
    assert again["enqueued"] == 0 and again["counts"]["finished"] == 20
    twin = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "twin", "params": LABELSET_PARAMS}).json()
    assert twin["enqueued"] == 0 and twin["reused"] == 20 and twin["counts"]["finished"] == 20
    manifest = api.get(f"/v1/datasets/{dataset}/labelsets/twin/manifest").json()
    original = api.get(f"/v1/datasets/{dataset}/labelsets/sp/manifest").json()
    assert [s["soft"]["sha256"] for s in manifest["studies"]] == [s["soft"]["sha256"] for s in original["studies"]]
    # A reused result has no job of its own: no job id that would answer 404.
    reused = api.get(f"/v1/datasets/{dataset}/labelsets/twin/studies", params={"page_size": 100}).json()["data"]
    assert {s["job_id"] for s in reused} == {None} and {s["status"] for s in reused} == {"finished"}
    conflict = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": {"n_segments": 31}})
    assert conflict.status_code == 409 and "other parameters" in conflict.json()["detail"]

    # A study uploaded later is queued for every labelset.
    late = upload(api, dataset, write_tiny_study(tmp_path / "in", "late", seed=99))
    assert sorted(j["labelset"] for j in late["jobs"]) == ["sp", "twin"]
    assert counts(api, dataset, "sp")["queued"] == 1
    run_burst_workers(settings, log_dir=tmp_path / "late")
    assert counts(api, dataset, "sp")["finished"] == counts(api, dataset, "twin")["finished"] == 21


@pytest.mark.slow
def test_manifest_lists_every_file_with_its_sha256(api, dataset, settings, tmp_path):
    first = upload(api, dataset, write_tiny_study(tmp_path / "in", "a", seed=1))
    api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "g", "method": "gaussian", "params": {"sigma": 1.5}})
    pending = api.get(f"/v1/datasets/{dataset}/labelsets/g/manifest").json()
    assert pending["studies"][0]["soft"] is None and pending["studies"][0]["status"] == "queued"
    run_burst_workers(settings, log_dir=tmp_path)
    manifest = api.get(f"/v1/datasets/{dataset}/labelsets/g/manifest").json()
    assert manifest["dataset"] == {
        "id": dataset, "name": "Tiny phantoms", "labels": {"background": 0, "c1": 1, "c2": 2, "c3": 3, "c4": 4},
        "num_classes": CLASSES, "channel_names": {"0": "A", "1": "B"}, "ignore_classes": [0],
    }  # fmt: skip
    assert manifest["labelset"]["name"] == "g" and manifest["labelset"]["method"] == "gaussian"
    assert manifest["labelset"]["params"]["sigma"] == 1.5
    (study,) = manifest["studies"]
    assert study["case_id"] == "a" and study["shape"] == [24, 28, 20] and study["status"] == "finished"
    assert study["images"] == [{"url": f["url"], "sha256": f["sha256"]} for f in first["images"]]
    assert study["label"] == {"url": first["label"]["url"], "sha256": first["label"]["sha256"]}
    soft = api.get(study["soft"]["url"])
    assert hashlib.sha256(soft.content).hexdigest() == study["soft"]["sha256"]
    # The gaussian method needs no superpixels: there is no map, but there is a preview.
    assert api.get(f"/v1/datasets/{dataset}/labelsets/g/studies/a/superpixels").status_code == 404
    assert api.get(f"/v1/datasets/{dataset}/labelsets/g/studies/a/preview.png").status_code == 200


@pytest.mark.slow
def test_a_failed_job_reports_its_error_is_not_retried_and_can_be_retried_by_hand(api, dataset, settings, tmp_path):
    upload(api, dataset, write_tiny_study(tmp_path / "in", "c1"))
    label = settings.data_dir / "datasets" / dataset / "labelsTr" / "c1.nii.gz"
    good = label.read_bytes()
    label.write_bytes(good[: len(good) // 2])  # corrupted after upload: bad input, not a transient error
    api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS})
    run_burst_workers(settings, log_dir=tmp_path)
    (study,) = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies").json()["data"]
    assert study["status"] == "failed" and "c1.nii.gz" in study["error"]
    job = api.get(f"/v1/jobs/{study['job_id']}").json()
    assert job["status"] == "failed" and job["attempts"] == 1 and "voxel data" in job["error"]
    assert counts(api, dataset, "sp")["failed"] == 1

    label.write_bytes(good)
    retried = api.post(f"/v1/jobs/{study['job_id']}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
    assert api.post(f"/v1/jobs/{study['job_id']}/retry").status_code == 409  # already queued
    run_burst_workers(settings, log_dir=tmp_path / "again")
    assert counts(api, dataset, "sp")["finished"] == 1


def test_queued_jobs_can_be_canceled_and_requeued(api, dataset, tmp_path):
    upload(api, dataset, write_tiny_study(tmp_path / "in", "c1"))
    api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS})
    (study,) = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies").json()["data"]
    canceled = api.delete(f"/v1/jobs/{study['job_id']}")
    assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"
    assert counts(api, dataset, "sp")["canceled"] == 1
    assert api.delete(f"/v1/jobs/{study['job_id']}").status_code == 409
    again = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "sp", "params": LABELSET_PARAMS}).json()
    assert again["enqueued"] == 1 and again["counts"]["queued"] == 1
    assert api.get("/v1/jobs/soften-0000").status_code == 404


@pytest.mark.slow
@pytest.mark.parametrize("fork", [False, True], ids=["in-process worker", "forking worker"])
def test_a_running_job_can_be_stopped_leaves_no_output_and_can_be_retried(api, dataset, settings, tmp_path, fork):
    job_id = start_slow_job(api, dataset, tmp_path)
    outputs = settings.data_dir / "datasets" / dataset / "labelsets" / "sp"
    connection = redis.Redis.from_url(settings.redis_url)
    worker = start_worker(settings, *(["--fork"] if fork else []), log=tmp_path / "worker.log")
    try:
        running = wait_for_stage(api, job_id, "superpixels")  # well into the engine, with stages to go
        assert running["progress"]["fraction"] < 0.95 and running["attempts"] == 1
        stopping = api.delete(f"/v1/jobs/{job_id}")
        assert stopping.status_code == 202 and stopping.json()["status"] in ("started", "stopped"), stopping.text
        job = wait_for_end(api, job_id, timeout_s=60)
        assert job["status"] == "stopped" and job["attempts"] == 1, job
        assert job["progress"]["stage"] != "done" and job["progress"]["fraction"] < 0.95, job
        # The in-process job stops itself at its next check; RQ kills a forking worker's horse.
        expected = "Job stopped by user" if fork else "stopped on request at stage"
        assert expected in job["error"], job
        assert connection.exists(STOP_KEY.format(job_id=job_id))

        assert counts(api, dataset, "sp") | {"total": 1} == {
            "queued": 0, "running": 0, "finished": 0, "failed": 1, "canceled": 0, "missing": 0, "total": 1,
        }  # fmt: skip
        (study,) = api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies").json()["data"]
        assert study["status"] == "failed" and study["error"] == job["error"], study
        assert api.get(f"/v1/datasets/{dataset}/labelsets/sp/studies/big/soft").status_code == 404
        # Nothing of this study: no result, no superpixels, no preview, no provenance, no hidden partial file.
        leftovers = sorted(p.name for p in outputs.iterdir()) if outputs.exists() else []
        assert leftovers == [], leftovers
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 409  # already ended

        retried = api.post(f"/v1/jobs/{job_id}/retry")
        # The idle worker may take it before the response is made.
        assert retried.status_code == 202 and retried.json()["status"] in ("queued", "started"), retried.text
        assert not connection.exists(STOP_KEY.format(job_id=job_id))  # queuing the id again forgot the stop
        job = wait_for_end(api, job_id, timeout_s=90)
        assert job["status"] == "finished" and job["error"] is None and job["progress"]["stage"] == "done", job
        assert counts(api, dataset, "sp")["finished"] == 1
        assert sorted(p.name for p in outputs.iterdir()) == ["big.json", "big.nii.gz", "big_preview.png", "big_superpixels.nii.gz"]
        assert nib.load(outputs / "big.nii.gz").shape == BIG + (CLASSES,)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert f"backend cpu, {'forking' if fork else 'non-forking'} worker" in (tmp_path / "worker.log").read_text()


def test_stop_requests_are_per_job_expire_and_can_be_cleared(redis_url):
    connection = redis.Redis.from_url(redis_url)
    assert not stop_requested(connection, "soften-a")
    request_stop(connection, "soften-a")
    request_stop(connection, "soften-c")
    assert stop_requested(connection, "soften-a") and not stop_requested(connection, "soften-b")
    assert 0 < connection.ttl(STOP_KEY.format(job_id="soften-a")) <= STOP_TTL_S
    clear_stop_requests(connection, ["soften-a", "soften-b"])
    clear_stop_requests(connection, [])  # nothing to clear is no error
    assert not stop_requested(connection, "soften-a") and stop_requested(connection, "soften-c")


def test_labelset_parameters_are_validated(api, dataset):
    bad = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "x", "params": {"n_segments": 0}})
    assert bad.status_code == 422 and bad.json()["field"] == "params.n_segments"
    unknown = api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "x", "params": {"segments": 5}})
    assert unknown.status_code == 422 and "segments" in unknown.json()["detail"]
    assert api.post(f"/v1/datasets/{dataset}/labelsets", json={"name": "x", "method": "blur"}).status_code == 422
