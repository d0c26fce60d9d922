# syntax=docker/dockerfile:1
# One image for every Mend process: `mend-server` (the default), `mend-gateway`,
# `mend-worker` and `mend-admin`. README, "Running Mend in production"; compose.yaml runs it.
#   docker build -t mend .
#   docker run --env-file .env mend mend-worker
ARG PYTHON_VERSION=3.11

# Wheels of Mend (and of the client distribution in clients/, when it is one) and of every
# dependency. Pillow, pillow-heif, PyAV and lameenc ship manylinux wheels that bundle their native
# libraries (libjpeg, libheif, FFmpeg, LAME, ...): nothing is compiled and the runtime image
# needs no system package beyond the base image's (tests/test_deploy.py checks it).
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
WORKDIR /src
# .dockerignore lets in only what the wheels are built from.
COPY . .
# clients/ is built too once it is a distribution of its own (mend-client).
# The tracing extra (OpenTelemetry) is in the image, off until OTEL_* variables ask for it.
RUN set -- ".[tracing]" \
    && if [ -f clients/pyproject.toml ]; then set -- ./clients ".[tracing]"; fi \
    && pip wheel --no-cache-dir --wheel-dir /wheels "$@"

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    # In a container every process listens on all interfaces; the published ports and
    # the network decide who reaches them.
    MEND_GRPC_HOST=0.0.0.0 \
    MEND_HTTP_HOST=0.0.0.0 \
    MEND_STORAGE_ROOT=/var/lib/mend/storage
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/mend --create-home mend \
    && mkdir /var/lib/mend/storage \
    && chown mend:mend /var/lib/mend/storage
USER 10001:10001
WORKDIR /var/lib/mend
EXPOSE 50051 8080
# Probes what PID 1 runs: grpc.health.v1 for mend-server, /health/ready for mend-gateway,
# a recent registration in Redis for mend-worker (python -m mend_server.probe --help).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-m", "mend_server.probe"]
CMD ["mend-server"]
