# syntax=docker/dockerfile:1.7
# RQ worker, GPU backend (CuPy and cuCIM on CUDA 13, the extra gpu-cu13; the stack bench/gpu_check.sh checks): never forks (CUDA does not survive
# fork()), so jobs run in the worker process itself (RQ's SimpleWorker).
#   docker build -f docker/worker-cuda.Dockerfile -t softlabel-worker-gpu .
# Needs the NVIDIA Container Toolkit on the host and a driver for CUDA 13.0 or newer (R580+).
# SIGTERM is a warm shutdown (the running job finishes, then the worker exits), so give the
# container a stop timeout longer than SOFTLABEL_JOB_TIMEOUT_S.

FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04 AS build
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Ubuntu 24.04's Python 3.12, and gcc with Python's headers for the engine's C kernels (Cython,
# OpenMP); the base image is pinned, apt versions follow its security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY cli ./cli
COPY service ./service
COPY worker ./worker
COPY trainer ./trainer
RUN pip install --no-cache-dir "/src[gpu-cu13]" \
 && pip check

FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04 AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# The venv's python is a link to /usr/bin/python3.12, so the runtime needs the same package;
# libgomp1 is the OpenMP runtime of the engine's C kernels.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 libgomp1 \
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
    SOFTLABEL_WORKER_BACKEND=gpu \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    CUPY_CACHE_DIR=/tmp/cupy \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /home/softlabel
VOLUME ["/data"]
# No HTTP surface to probe: RQ workers heartbeat in Redis, and a job whose worker died is
# requeued by crash recovery once its lease expires.
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
# Exec form: the worker is PID 1 and receives SIGTERM itself; --no-fork runs RQ's SimpleWorker.
CMD ["softlabel", "worker", "--backend", "gpu", "--no-fork"]
