# syntax=docker/dockerfile:1
# The gateway's image: `docker build -t tollway .` at the repository root. Dependencies
# come from uv.lock (every file's hash checked); the image runs as a non-root user, on a
# read-only root filesystem, with its data dir on a volume. README: "Deployment".
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/tollway
WORKDIR /build
COPY requirements-uv.txt ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-uv.txt
# Dependencies first, in a layer that changes only with the lock; then the project itself,
# as a regular (not editable) install. No dev extra, no dev group.
COPY pyproject.toml uv.lock ./
COPY examples/plugins/tollway-banned-words/pyproject.toml examples/plugins/tollway-banned-words/
RUN uv sync --locked --no-dev --no-editable --no-install-project --no-cache
COPY README.md ./
COPY src ./src
RUN uv sync --locked --no-dev --no-editable --no-cache

FROM ${PYTHON_IMAGE}
# A fixed numeric id, so that Kubernetes' runAsNonRoot can check it and volumes can be
# given to it. /var/lib/tollway is the volume; the data dir is made inside it, 0700.
RUN groupadd --system --gid 10001 tollway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/tollway \
      --shell /usr/sbin/nologin tollway \
 && install --directory --owner=10001 --group=10001 --mode=0700 /var/lib/tollway \
 && install --directory --mode=0755 /etc/tollway
COPY --from=build /opt/tollway /opt/tollway
COPY --chmod=0755 deploy/entrypoint.py /opt/tollway/bin/tollway-entrypoint
# Bytecode was compiled at build time: nothing is written next to the code at run time.
# The working directory is where `tollway serve` finds ./tollway.yaml: mount the config
# at /etc/tollway/tollway.yaml (or set TOLLWAY_CONFIG). These TOLLWAY_ variables win over
# the file's settings of the same name.
ENV PATH=/opt/tollway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TOLLWAY_HOST=0.0.0.0 \
    TOLLWAY_PORT=8080 \
    TOLLWAY_DATA_DIR=/var/lib/tollway/data
WORKDIR /etc/tollway
VOLUME ["/var/lib/tollway"]
USER 10001:10001
EXPOSE 8080
# Python's own HTTP client (no curl in the image), never through a proxy from the
# environment: the process is up and answers on its port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import http.client as h, os; c = h.HTTPConnection('127.0.0.1', int(os.environ.get('TOLLWAY_PORT', '8080')), timeout=4); c.request('GET', '/health/live'); raise SystemExit(c.getresponse().status != 200)"]
# NAME_FILE variables become NAME (Docker and Compose secrets), then `tollway <command>`:
# `serve` by default; `docker run IMAGE migrate`, `... keys list` run the others.
ENTRYPOINT ["tollway-entrypoint", "tollway"]
CMD ["serve"]
