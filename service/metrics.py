"""Prometheus metrics for the API: ``install_metrics(app, ...)`` adds a middleware and ``/metrics``.

Every metric is documented in ``docs/prometheus.md``. Request metrics are counted in this
process; queue depth, jobs by status, workers and the job stage histogram are read from Redis
at scrape time (the job histogram is written there by workers, see ``softlabel.worker.jobs.metrics``; the layout is in ``softlabel.worker.jobs.contract``), so
any API replica reports the same cluster-wide values.

Each call builds its own :class:`prometheus_client.CollectorRegistry` (kept on
``app.state.metrics``), so apps built in tests never collide in the global registry. Run one
uvicorn process per container and scale with replicas: request counters live in the process.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from fastapi import FastAPI, Response
from fastapi.params import Depends
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Queue
from rq.worker_registration import get_keys as worker_keys
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from softlabel.worker.jobs.contract import BUCKETS_S, JOB_STAGE_KEY, STAGE_FIELD_SEPARATOR, format_le

METRICS_PATH = "/metrics"
UNMATCHED_ROUTE = "<unmatched>"  # label for requests no route matched (keeps label values bounded)
# Upper bounds in seconds: JSON routes answer in milliseconds, uploads of a 1 GiB study take minutes.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# RQ job states reported by softlabel_jobs{status}, and the registry holding each (None: the queue list).
JOB_STATES: dict[str, str | None] = {
    "queued": None,
    "started": "started_job_registry",
    "scheduled": "scheduled_job_registry",
    "deferred": "deferred_job_registry",
    "finished": "finished_job_registry",
    "failed": "failed_job_registry",
    "canceled": "canceled_job_registry",
}

log = logging.getLogger("softlabel.metrics")

@dataclass
class StageHistogram:
    """One (stage, backend) series read back: cumulative buckets, count and sum in seconds."""

    stage: str
    backend: str
    buckets: list[tuple[str, int]] = field(default_factory=list)  # (le, cumulative count), +Inf last
    count: int = 0
    sum_s: float = 0.0


def read_job_timings(connection: redis.Redis) -> Iterator[StageHistogram]:
    """Every (stage, backend) histogram in Redis, with cumulative buckets (for ``/metrics``)."""
    raw = connection.hgetall(JOB_STAGE_KEY)
    series: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in raw.items():
        parts = (key.decode() if isinstance(key, bytes) else key).split(STAGE_FIELD_SEPARATOR)
        if len(parts) < 3:
            continue
        stage, backend, kind = parts[0], parts[1], STAGE_FIELD_SEPARATOR.join(parts[2:])
        series.setdefault((stage, backend), {})[kind] = float(value)
    bounds = [*BUCKETS_S, math.inf]
    for (stage, backend), values in sorted(series.items()):
        histogram = StageHistogram(stage, backend, sum_s=values.get("sum", 0.0))
        cumulative = 0
        for bound in bounds:
            le = format_le(bound)
            cumulative += int(values.get(f"bucket{STAGE_FIELD_SEPARATOR}{le}", 0))
            histogram.buckets.append((le, cumulative))
        histogram.count = cumulative  # the +Inf bucket, written in the same transaction as "count"
        yield histogram


RedisFactory = Callable[[], redis.Redis]
QueueNames = Callable[[], Sequence[str]] | Sequence[str]


@dataclass
class AppMetrics:
    """What ``install_metrics`` built: the registry ``/metrics`` renders and the request metrics."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram


class RedisCollector(Collector):
    """Queue depth, jobs by status, workers and job stage timings, read from Redis per scrape."""

    def __init__(self, redis_factory: RedisFactory, queue_names: QueueNames) -> None:
        self.redis_factory = redis_factory
        self.queue_names = queue_names

    def _queues(self) -> list[str]:
        names = self.queue_names() if callable(self.queue_names) else self.queue_names
        return list(names)

    def describe(self) -> Iterable[Metric]:
        """The families without samples, so registering never touches Redis."""
        return self._families()

    def _families(self) -> list[Metric]:
        return [
            GaugeMetricFamily("softlabel_metrics_redis_up", "1 if this scrape could read Redis, else 0"),
            GaugeMetricFamily("softlabel_queue_depth", "jobs waiting in the RQ queue (the list KEDA scales on)",
                              labels=["queue"]),
            GaugeMetricFamily("softlabel_jobs", "RQ jobs by status (queue list and job registries)",
                              labels=["queue", "status"]),
            GaugeMetricFamily("softlabel_workers", "RQ workers listening to the queue", labels=["queue"]),
            HistogramMetricFamily("softlabel_job_stage_duration_seconds",
                                  "seconds a job spent in each stage, by backend, summed over all workers",
                                  labels=["stage", "backend"]),
        ]  # fmt: skip

    def collect(self) -> Iterable[Metric]:
        up, depth, jobs, workers, stages = self._families()
        try:
            connection = self.redis_factory()
            for name in self._queues():
                counts = _job_counts(connection, name)
                depth.add_metric([name], counts["queued"])
                for status, count in counts.items():
                    jobs.add_metric([name, status], count)
                queue = Queue(name, connection=connection)
                workers.add_metric([name], len(worker_keys(queue=queue, connection=connection)))
            for series in read_job_timings(connection):
                stages.add_metric([series.stage, series.backend], series.buckets, series.sum_s)
            up.add_metric([], 1)
        except redis.RedisError as exc:
            log.warning("metrics: Redis unreachable during scrape: %s", exc)
            up.add_metric([], 0)
            return [up]
        return [up, depth, jobs, workers, stages]


def _job_counts(connection: redis.Redis, queue_name: str) -> dict[str, int]:
    """Jobs per state in one round trip (registry sizes as stored, without RQ's cleanup)."""
    queue = Queue(queue_name, connection=connection)
    pipe = connection.pipeline(transaction=False)
    for registry in JOB_STATES.values():
        if registry is None:
            pipe.llen(queue.key)
        else:
            pipe.zcard(getattr(queue, registry).key)
    return {status: int(count) for status, count in zip(JOB_STATES, pipe.execute())}


def route_template(scope: Scope) -> str:
    """The matched route's full template, e.g. ``/v1/datasets/{dataset_id}``.

    ``scope["route"]`` is the matched route, but routers included with a prefix may hand over
    the route as declared in its own router (``/datasets/{dataset_id}``). The prefix is the
    part of the path before the route's own pattern matches; path parameters inside it are
    put back as ``{name}``, so raw values never become label values.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not template:
        return UNMATCHED_ROUTE
    regex = getattr(route, "path_regex", None)
    path = scope.get("path", "")
    root_path = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    if regex is None or regex.match(path):
        return template
    segments = path.split("/")
    for cut in range(2, len(segments)):
        if regex.match("/" + "/".join(segments[cut:])):
            own = set(getattr(route, "param_convertors", {}))
            names = {str(v): k for k, v in scope.get("path_params", {}).items() if k not in own}
            prefix = [f"{{{names[s]}}}" if s in names else s for s in segments[:cut]]
            return "/".join(prefix) + template
    return template


class PrometheusMiddleware:
    """Pure ASGI middleware (streams uploads and downloads untouched) counting each HTTP request.

    The route label is the route's template (``/v1/datasets/{dataset_id}``), never the raw path,
    so label values stay bounded; requests no route matched are labelled ``<unmatched>``.
    """

    def __init__(self, app: ASGIApp, *, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method=method, route=template, status=str(status)).inc()
            self.metrics.latency.labels(method=method, route=template).observe(time.perf_counter() - start)


def install_metrics(
    app: FastAPI,
    *,
    redis_factory: RedisFactory | None = None,
    queue_names: QueueNames = ("softlabel",),
    dependencies: Sequence[Depends] = (),
    responses: dict[int | str, dict[str, Any]] | None = None,
    path: str = METRICS_PATH,
) -> AppMetrics:
    """Count requests in a middleware and serve every metric at ``path`` (Prometheus text format).

    Parameters
    ----------
    app : FastAPI
        The application; call this in ``create_app`` after the routers are included.
    redis_factory : callable returning redis.Redis, optional
        Called at each scrape; without it the queue, job and worker metrics are left out.
    queue_names : sequence of str, or a callable returning one
        RQ queues to report (a callable is read at each scrape, e.g. from settings).
    dependencies : sequence of ``fastapi.Depends``
        Guards for the route, e.g. ``[ReadScope]`` so scrapes need a ``read`` token.
    responses : dict, optional
        The route's other answers in OpenAPI (``responses=`` of FastAPI), e.g. its guards' errors.
    path : str
        Where the metrics are served.
    """
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    metrics = AppMetrics(
        registry=registry,
        requests=Counter("softlabel_http_requests", "HTTP requests answered, by route template and status",
                         ["method", "route", "status"], registry=registry),
        latency=Histogram("softlabel_http_request_duration_seconds",
                          "seconds from request start to the last byte of the response, by route template",
                          ["method", "route"], buckets=LATENCY_BUCKETS_S, registry=registry),
    )  # fmt: skip
    if redis_factory is not None:
        registry.register(RedisCollector(redis_factory, queue_names))
    app.state.metrics = metrics
    app.add_middleware(PrometheusMiddleware, metrics=metrics)

    def prometheus_metrics() -> Response:
        """Prometheus metrics of this API replica and of the queue (text exposition format)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(
        path, prometheus_metrics, methods=["GET"], dependencies=list(dependencies), tags=["metrics"],
        response_class=Response, include_in_schema=True,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text format"}}
        | (responses or {}),
    )  # fmt: skip
    return metrics
