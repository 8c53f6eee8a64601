# syntax=docker/dockerfile:1
# The spikeprof operator image: `docker build -t ghcr.io/spikeprof/spikeprof:0.1.0 .`
# The chart (charts/spikeprof) runs it as `spikeprof run ...`, as UID 65532, with a read-only
# root filesystem, a writable /tmp and the artifact volume at /var/lib/spikeprof.

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: the operator's wheel and the wheels of its dependencies --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip wheel --wheel-dir /wheels .

# -- runtime: the wheels installed into a slim Python, run as a non-root user ----------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SPIKEPROF_ARTIFACT_ROOT=/var/lib/spikeprof
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels spikeprof \
 && groupadd --system --gid 65532 spikeprof \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin spikeprof \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/spikeprof
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
WORKDIR /var/lib/spikeprof
# 8080: Prometheus /metrics; 8081: kopf's liveness endpoint /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["spikeprof"]
CMD ["run"]
