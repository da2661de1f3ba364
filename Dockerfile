# The flower classifier service. One image for CPU and NVIDIA GPU hosts:
#   docker build -t flower-classifier .                                        # CPU
#   docker build -t flower-classifier:gpu --build-arg TF_PACKAGE='tensorflow[and-cuda]' .
# Behind a TLS-inspecting proxy, put its CA certificate(s) in docker/certs/*.crt first.
ARG BASE_IMAGE=debian:bookworm-slim

# ---- builder: a virtual environment with the app and its dependencies ----
FROM ${BASE_IMAGE} AS builder
ARG TF_PACKAGE=tensorflow
ARG EXTRAS=openvino
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# Extra CA certificates (docker/certs/*.crt) are trusted before anything is downloaded.
COPY docker/certs/ /usr/local/share/ca-certificates/extra/
RUN update-ca-certificates
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip
# Dependencies first (cached while only the code changes), then the app itself.
COPY pyproject.toml README.md /src/
RUN /opt/venv/bin/pip install "${TF_PACKAGE}>=2.21,<2.22" \
    && mkdir -p /src/app && touch /src/app/__init__.py \
    && /opt/venv/bin/pip install "/src[${EXTRAS}]" \
    && /opt/venv/bin/pip uninstall -y flower-classifier
COPY app /src/app
RUN /opt/venv/bin/pip install --no-deps "/src"

# ---- runtime: Debian's python3, the venv, a non-root user ----
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY docker/certs/ /usr/local/share/ca-certificates/extra/
RUN update-ca-certificates \
    && useradd --system --uid 10001 --create-home --home-dir /srv flowers \
    && mkdir -p /srv/model_store /srv/data \
    && chown -R flowers:flowers /srv
# Metadata first, the big venv copy last: every instruction after it would snapshot it again.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KERAS_HOME=/srv/.keras \
    FLOWERS_MODEL_STORE=/srv/model_store \
    FLOWERS_DATA_DIR=/srv/data \
    FLOWERS_GRPC_PORT=8001
USER flowers
WORKDIR /srv
# Trained models live in the store volume, never in the image.
VOLUME ["/srv/model_store"]
# HTTP (our API and the Open Inference Protocol's REST routes), and the protocol's gRPC service
# (FLOWERS_GRPC_PORT; set it empty to turn gRPC off).
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
# Exec form: SIGTERM reaches uvicorn, which drains requests and the batch queue, then exits 0.
# One worker per container: the model and the batch queue live in the process.
CMD ["flowers-serve", "--host", "0.0.0.0", "--port", "8000"]
COPY --from=builder /opt/venv /opt/venv
