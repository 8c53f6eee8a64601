# syntax=docker/dockerfile:1
# The spikeprof operator image: `docker build -t ghcr.io/spikeprof/spikeprof:0.1.0 .`
# (`make image` builds it with buildah on a Debian base made here: tools/image/build.sh).
# The chart (charts/spikeprof) runs it as `spikeprof run ...`, as UID 65532, with a read-only
# root filesystem, a writable /tmp and the artifact volume at /var/lib/spikeprof.

# Any image with python3 (>= 3.11) and its venv module, used for both stages, so that the venv's
# interpreter link points at the same python3 in the runtime stage.
ARG PYTHON_IMAGE=python:3.11-slim

# -- build: the operator and its dependencies installed into a venv --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/spikeprof
WORKDIR /src
# Dependencies first, in a layer of their own: a change to the operator's code reuses it.
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && /opt/spikeprof/bin/pip install --requirement /tmp/requirements.txt
COPY README.md ./
COPY operator/ operator/
# The runtime never installs anything: pip and setuptools leave the venv.
RUN /opt/spikeprof/bin/pip install --no-deps . \
 && /opt/spikeprof/bin/pip uninstall --yes pip setuptools

# -- runtime: the venv on a bare Python, run as a non-root user --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/spikeprof/bin:$PATH \
    SPIKEPROF_ARTIFACT_ROOT=/var/lib/spikeprof
RUN groupadd --system --gid 65532 spikeprof \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin spikeprof \
 && install -d -o 65532 -g 65532 -m 0750 /var/lib/spikeprof
COPY --from=build /opt/spikeprof /opt/spikeprof
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
WORKDIR /var/lib/spikeprof
# 8080: Prometheus /metrics; 8081: kopf's liveness endpoint /healthz; 9095: the alert receiver.
EXPOSE 8080 8081 9095
ENTRYPOINT ["spikeprof"]
CMD ["run"]
