# syntax=docker/dockerfile:1.7
# The REST API: FastAPI under uvicorn, one process per container (scale with replicas).
#   docker build -f docker/api.Dockerfile -t softlabel-api .
# Base images are pinned by exact tag; docs/deploy.md shows how to add the digest.

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
COPY --chmod=0755 docker/probe.py /usr/local/bin/softlabel-probe
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOFTLABEL_DATA_DIR=/data \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /home/softlabel
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["softlabel-probe", "healthz"]
# --proxy-headers: download URLs in manifests must carry the ingress's scheme and host.
CMD ["uvicorn", "softlabel.service.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--forwarded-allow-ips", "*", "--timeout-graceful-shutdown", "30", "--no-server-header"]
