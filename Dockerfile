# The bluegreen-operator image.
#   docker build -t bluegreen-operator:0.1.0 .
# Two stages: the builder turns the package (and its pinned dependencies from pyproject.toml)
# into a virtualenv; the final image gets only that virtualenv, with no pip cache, no build
# tools and no source tree. Both stages use the same base so the venv's interpreter symlink
# (python:3.11-slim's /usr/local/bin/python3.11, or Debian's /usr/bin/python3.11) resolves in
# the final image.
# The tag is pinned to a Python minor and a Debian release; pin a digest (@sha256:…) in a
# release pipeline for fully reproducible builds. BASE_IMAGE may name another image with
# python3.11 on its PATH: `make image` builds from a Debian bookworm root filesystem made
# from Debian's packages (hack/build-image.sh), as no registry is reachable there.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# python3.11, not python: Debian's packages install no `python` command.
RUN python3.11 -m venv /opt/venv

WORKDIR /src
# Only what pip needs to build the package: .dockerignore keeps everything else out.
COPY pyproject.toml README.md ./
COPY operator/ operator/
# Not editable: the final image has no /src. pip compiles the .pyc files here, so the
# operator never needs to write any at run time (readOnlyRootFilesystem). pip and setuptools
# leave the venv afterwards: nothing in the image may install packages.
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools


FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="bluegreen-operator" \
      org.opencontainers.image.description="A Kubernetes operator for plain, safe blue/green deployments" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}"

COPY --from=builder /opt/venv /opt/venv

# A numeric uid:gid, so Kubernetes can verify runAsNonRoot without an /etc/passwd entry.
USER 65532:65532

# Kopf's liveness endpoint (--liveness below).
EXPOSE 8080

ENTRYPOINT ["bluegreen-operator"]
# Default: all namespaces; add --namespace NS (repeatable) to restrict, --verbose for debug logs.
CMD ["--liveness=http://0.0.0.0:8080/healthz"]
