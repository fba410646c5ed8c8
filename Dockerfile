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
HEALTHCHECK --interval=20s --timeout=3s --retries=3 \
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
HEALTHCHECK --interval=20s --timeout=3s --retries=3 \
    CMD ["bash", "/app/healthcheck.sh", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["python", "-m", "loadlab.container"]
CMD ["serve", "flask", "--host", "0.0.0.0", "--port", "8000"]

#   master: locust -f locust/locustfile.py,locust/shapes.py --class-picker --master
#   worker: locust -f locust/locustfile.py --worker --master-host MASTER
FROM base AS locust
COPY requirements/locust.txt /tmp/requirements.txt
RUN pip install --require-hashes -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=package /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/loadlab-*.whl && rm -rf /tmp/wheels
COPY src/loadlab/healthcheck.sh /app/healthcheck.sh
COPY locust /app/locust
USER 10001
EXPOSE 8089 5557
ENTRYPOINT ["locust"]
CMD ["-f", "/app/locust/locustfile.py,/app/locust/shapes.py", "--class-picker"]
