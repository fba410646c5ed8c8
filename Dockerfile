# The lab's own images, one target each (docker-compose.yml picks it): fastapi, flask and
# locust (master and workers). Build context: the repository root, e.g.
#   docker build --target fastapi -t loadlab/fastapi:dev .
# PYTHON_IMAGE: an official slim image by default; `make offline-images` passes a base
# made from Debian packages instead (no registry needed).
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    LOADLAB_IN_CONTAINER=1
RUN python3 -m venv /opt/venv \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/loadlab loadlab
WORKDIR /app

# The loadlab package as a wheel, built once for every image (its README is not needed).
FROM base AS package
COPY pyproject.toml /build/pyproject.toml
COPY src /build/src
RUN touch /build/README.md && pip wheel --no-deps --wheel-dir /wheels /build

# Each image: its pinned, hashed dependencies (requirements/NAME.txt, from uv.lock) before
# the code, so that slow layer stays cached while src/ changes; then the package; compose's
# healthchecks run /app/healthcheck.sh (bash alone, no interpreter start-up).
FROM base AS fastapi
COPY requirements/fastapi.txt /tmp/requirements.txt
RUN pip install --require-hashes -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=package /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/loadlab-*.whl && rm -rf /tmp/wheels
COPY src/loadlab/healthcheck.sh /app/healthcheck.sh
COPY services/fastapi /app/services/fastapi
ENV LOADLAB_SERVICES_DIR=/app/services
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=20s --timeout=3s --retries=3 --start-period=60s \
    CMD ["bash", "/app/healthcheck.sh", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["python", "-m", "loadlab.container"]
CMD ["serve", "fastapi", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS flask
COPY requirements/flask.txt /tmp/requirements.txt
RUN pip install --require-hashes -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=package /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/loadlab-*.whl && rm -rf /tmp/wheels
COPY src/loadlab/healthcheck.sh /app/healthcheck.sh
COPY services/flask /app/services/flask
ENV LOADLAB_SERVICES_DIR=/app/services
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=20s --timeout=3s --retries=3 --start-period=60s \
    CMD ["bash", "/app/healthcheck.sh", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["python", "-m", "loadlab.container"]
CMD ["serve", "flask", "--host", "0.0.0.0", "--port", "8000"]

# Compiled dependencies the lock has no wheel for on some machine (hdrhistogram 0.10.8 has
# none for Linux aarch64: Apple-silicon Macs, Graviton, a Raspberry Pi): their wheel from
# PyPI where one fits, else built here from the sdist, whose hash the lock holds, with the
# hashed build requirements and no build isolation (nothing unhashed is fetched). The
# compiler stays in this stage; the image gets the wheel only. tests/test_compose_file.py
# checks that every other compiled dependency has a wheel for amd64 and arm64.
FROM base AS locust-wheels
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG BUILD_FROM_SOURCE="hdrhistogram"
ARG BUILD_REQUIRES="pbr setuptools"
COPY requirements/locust.txt /tmp/requirements.txt
# Debian's compiler, of the release the base image is; $tools is a list of words.
# hadolint ignore=DL3008,SC2086
RUN pick() { awk -v re="^(${1// /|})==" '$0 ~ re {p = 1} p {print} p && !/\\$/ {p = 0}' \
            /tmp/requirements.txt; } \
    && pick "$BUILD_FROM_SOURCE" >/tmp/compiled.txt \
    && if ! pip wheel --require-hashes --no-deps --only-binary=:all: --wheel-dir /wheels \
            -r /tmp/compiled.txt; then \
        include=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])') \
        && tools="gcc libc6-dev" && { [ -f "$include/Python.h" ] || tools="$tools python3-dev"; } \
        && apt-get update -q \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $tools \
        && pick "$BUILD_REQUIRES" >/tmp/build.txt \
        && pip install --require-hashes --no-deps -r /tmp/build.txt \
        && pip wheel --require-hashes --no-deps --no-build-isolation --no-binary=:all: \
            --wheel-dir /wheels -r /tmp/compiled.txt; \
    fi \
    && ls /wheels

#   master: locust -f locust/locustfile.py,locust/shapes.py --class-picker --master
#   worker: locust -f locust/locustfile.py --worker --master-host MASTER
FROM base AS locust
COPY requirements/locust.txt /tmp/requirements.txt
COPY --from=locust-wheels /wheels /tmp/compiled
# The compiled wheels first (checked in their stage); the rest against the lock's hashes.
RUN pip install --no-index --no-deps /tmp/compiled/*.whl \
    && pip install --require-hashes -r /tmp/requirements.txt \
    && rm -rf /tmp/requirements.txt /tmp/compiled
COPY --from=package /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/loadlab-*.whl && rm -rf /tmp/wheels
COPY src/loadlab/healthcheck.sh /app/healthcheck.sh
COPY locust /app/locust
USER 10001
EXPOSE 8089 5557
ENTRYPOINT ["locust"]
CMD ["-f", "/app/locust/locustfile.py,/app/locust/shapes.py", "--class-picker"]
