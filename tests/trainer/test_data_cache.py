"""The trainer's download cache against a scripted HTTP server (helpers.http_faults): resume, verify, faults."""

import gzip
import json
import random

import httpx
import pytest

from helpers.http_faults import API, ScriptedServer, sha
from softlabel.service.client import SoftlabelClient
from softlabel.trainer.data_cache import DataCache, fetch_labelset

# A stand-in for a .nii.gz file, larger than the client's 1 MiB write buffer so that an
# interrupted download leaves bytes behind.
PAYLOAD = gzip.compress(random.Random(0).randbytes(3 << 20))
CUT = 2 << 20  # bytes sent before the first connection drops


def test_download_verify_and_reuse(tmp_path):
    service = ScriptedServer({"/v1/f": PAYLOAD})
    cache = service.cache(tmp_path)
    path = cache.fetch("/v1/f", sha(PAYLOAD))
    assert path.name == f"{sha(PAYLOAD)}.nii.gz" and path.read_bytes() == PAYLOAD
    assert cache.fetch("/v1/f", sha(PAYLOAD)) == path
    assert len(service.requests) == 1


def test_plain_nifti_gets_nii_suffix(tmp_path):
    data = b"\x5c\x01" + bytes(400)
    assert ScriptedServer({"/v1/f": data}).cache(tmp_path).fetch("/v1/f", sha(data)).name.endswith(".nii")


def test_interrupted_download_resumes_with_range(tmp_path):
    service = ScriptedServer({"/v1/f": PAYLOAD}, cut_first=CUT)
    path = service.cache(tmp_path).fetch("/v1/f", sha(PAYLOAD))
    assert path.read_bytes() == PAYLOAD
    assert service.requests == [("/v1/f", None), ("/v1/f", f"bytes={CUT}-")]
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def _part(root):
    """Where the cache keeps the partial download of PAYLOAD."""
    folder = root / "blobs" / sha(PAYLOAD)[:2]
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{sha(PAYLOAD)}.part"


def test_partial_file_from_an_earlier_process_resumes(tmp_path):
    _part(tmp_path).write_bytes(PAYLOAD[:500])
    service = ScriptedServer({"/v1/f": PAYLOAD})
    assert service.cache(tmp_path).fetch("/v1/f", sha(PAYLOAD)).read_bytes() == PAYLOAD
    assert service.requests == [("/v1/f", "bytes=500-")]


def test_server_ignoring_range_restarts(tmp_path):
    _part(tmp_path).write_bytes(b"garbage")
    service = ScriptedServer({"/v1/f": PAYLOAD}, honour_range=False)
    assert service.cache(tmp_path).fetch("/v1/f", sha(PAYLOAD)).read_bytes() == PAYLOAD


def test_complete_partial_file_is_verified_after_416(tmp_path):
    _part(tmp_path).write_bytes(PAYLOAD)
    service = ScriptedServer({"/v1/f": PAYLOAD})
    assert service.cache(tmp_path).fetch("/v1/f", sha(PAYLOAD)).read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused(tmp_path):
    service = ScriptedServer({"/v1/f": PAYLOAD})
    with pytest.raises(ValueError, match=r"/v1/f: .*sha256: expected 0{64}, got another"):
        service.cache(tmp_path).fetch("/v1/f", "0" * 64)
    assert not any(p.is_file() for p in (tmp_path / "blobs").rglob("*"))


def test_http_error_names_the_url(tmp_path):
    with pytest.raises(ValueError, match="/v1/missing: GET /v1/missing: 404: not found"):
        ScriptedServer().cache(tmp_path).fetch("/v1/missing", sha(b""))


def test_offline_uses_only_the_cache(tmp_path):
    ScriptedServer({"/v1/f": PAYLOAD}).cache(tmp_path).fetch("/v1/f", sha(PAYLOAD))
    offline = ScriptedServer().cache(tmp_path, offline=True)
    assert offline.fetch("/v1/f", sha(PAYLOAD)).read_bytes() == PAYLOAD
    with pytest.raises(ValueError, match="offline"):
        offline.fetch("/v1/g", sha(b"other"))


MANIFEST_URL = "/v1/datasets/d1/labelsets/sp/manifest"


def test_manifest_cached_and_used_when_unreachable(tmp_path):
    manifest = {"dataset": {"id": "d1"}, "labelset": {"name": "sp"}, "studies": []}
    assert ScriptedServer(manifests={MANIFEST_URL: manifest}).cache(tmp_path).manifest("d1", "sp") == manifest

    def down(request):
        raise httpx.ConnectError("refused")

    client = SoftlabelClient(API)
    client.http = httpx.Client(base_url=API, transport=httpx.MockTransport(down))
    unreachable = DataCache(tmp_path, api=API, client=client)
    with pytest.warns(UserWarning, match="cached manifest"):
        assert unreachable.manifest("d1", "sp") == manifest
    assert ScriptedServer().cache(tmp_path, offline=True).manifest("d1", "sp") == manifest
    with pytest.raises(ValueError, match="manifest: 404: not found"):
        ScriptedServer().cache(tmp_path).manifest("d1", "other")


def _study(case_id, shape, files, *, soft=True, status="finished"):
    entry = {"case_id": case_id, "shape": shape, "spacing_mm": [1.0] * len(shape), "status": status}
    for key, url in (("images", f"/v1/{case_id}/img"), ("label", f"/v1/{case_id}/lab"), ("soft", f"/v1/{case_id}/soft")):
        if key == "soft" and not soft:
            continue
        files[url] = f"{case_id}{key}".encode()
        ref = {"url": url, "sha256": sha(files[url])}
        entry[key] = [ref] if key == "images" else ref
    return entry


def test_fetch_labelset_filters_by_dimensionality(tmp_path):
    files = {}
    studies = [_study("a2", [8, 8, 1], files), _study("b3", [8, 8, 8], files), _study("c2", [8, 8, 1], files, status="queued")]
    service = ScriptedServer(files, {MANIFEST_URL: {"dataset": {}, "labelset": {}, "studies": studies}})
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "b3.nii.gz").write_bytes(b"")
    _, cases = fetch_labelset(service.cache(tmp_path / "c"), "d1", "sp", spatial_dims=3, with_soft=True, truth_dir=truth)
    assert [c.case_id for c in cases] == ["b3"] and cases[0].truth == truth / "b3.nii.gz"
    assert cases[0].soft.read_bytes() == b"b3soft"
    with pytest.raises(ValueError, match=r"expected every study finished, got unfinished \['c2'\]"):
        fetch_labelset(service.cache(tmp_path / "c"), "d1", "sp", spatial_dims=2, with_soft=True)
    _, flat = fetch_labelset(service.cache(tmp_path / "c"), "d1", "sp", spatial_dims=2, with_soft=False)
    assert [(c.case_id, c.soft) for c in flat] == [("a2", None), ("c2", None)]
    with pytest.raises(ValueError, match="expected the clean truth of a2"):
        fetch_labelset(service.cache(tmp_path / "c"), "d1", "sp", spatial_dims=2, with_soft=False, truth_dir=truth)
    assert json.loads((tmp_path / "c" / "manifests" / "d1" / "sp.json").read_text())["studies"] == studies
