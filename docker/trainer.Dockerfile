# syntax=docker/dockerfile:1.7
# The trainer: PyTorch (PyPI's Linux wheels bundle their CUDA libraries) and MONAI. It talks to
# the API over HTTP only and pulls labels by dataset id.
#   docker build -f docker/trainer.Dockerfile -t softlabel-trainer .
#   docker run --rm --gpus all -v "$PWD/runs:/runs" softlabel-trainer train --help

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
RUN pip install --no-cache-dir "/src[train]" \
 && pip check

FROM python:3.11.11-slim-bookworm AS runtime
# libgomp1: the OpenMP runtime the engine's C kernels link to.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 softlabel \
 && useradd --system --uid 10001 --gid softlabel --create-home --home-dir /home/softlabel softlabel \
 && mkdir -p /runs \
 && chown softlabel:softlabel /runs
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /runs
VOLUME ["/runs"]
# A batch command, not a server: nothing to health-check.
HEALTHCHECK NONE
ENTRYPOINT ["softlabel"]
CMD ["--help"]
