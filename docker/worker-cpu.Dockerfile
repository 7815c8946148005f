# syntax=docker/dockerfile:1.7
# RQ worker, CPU backend (NumPy/SciPy/scikit-image and the C kernels): runs jobs in the worker process
# (RQ's SimpleWorker; `softlabel worker --fork` would fork a work horse per job instead).
#   docker build -f docker/worker-cpu.Dockerfile -t softlabel-worker-cpu .
# SIGTERM is a warm shutdown (the running job finishes, then the worker exits), so give the
# container a stop timeout longer than SOFTLABEL_JOB_TIMEOUT_S.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# gcc builds the engine's C kernels (Cython, OpenMP) at install; the base image is pinned,
# apt versions follow its security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY cli ./cli
COPY service ./service
COPY worker ./worker
COPY trainer ./trainer
RUN pip install --no-cache-dir . \
 && pip check

FROM python:3.11.11-slim-bookworm AS runtime
# libgomp1: the OpenMP runtime the engine's C kernels link to.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 softlabel \
 && useradd --system --uid 10001 --gid softlabel --create-home --home-dir /home/softlabel softlabel \
 && mkdir -p /data \
 && chown softlabel:softlabel /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOFTLABEL_DATA_DIR=/data \
    SOFTLABEL_WORKER_BACKEND=cpu \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /home/softlabel
VOLUME ["/data"]
# No HTTP surface to probe: RQ workers heartbeat in Redis, and a job whose worker died is
# requeued by crash recovery once its lease expires.
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
# Exec form: the worker is PID 1 and receives SIGTERM itself.
CMD ["softlabel", "worker", "--backend", "cpu"]
