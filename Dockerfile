# The flower classifier service, in two images from this one Dockerfile:
#   docker build -t flower-classifier .                                  # cpu (the default)
#   docker build -t flower-classifier:gpu --build-arg VARIANT=gpu .      # NVIDIA GPU
# cpu installs tensorflow-cpu (no CUDA libraries) and OpenVINO; gpu installs
# tensorflow[and-cuda]. Behind a TLS-inspecting proxy, put its CA certificate(s) in
# docker/certs/*.crt first.
ARG BASE_IMAGE=debian:bookworm-slim

# ---- builder: a virtual environment with the app and its dependencies ----
FROM ${BASE_IMAGE} AS builder
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
# Dependencies first (cached while only the code changes), then the app itself. The project
# requires `tensorflow`; the variant's TensorFlow build provides it (tensorflow-cpu under another
# name), so the other requirements are installed from pyproject.toml and the app without deps.
# Left out, since nothing imports them at run time: TensorFlow's C++ headers (tensorflow/include,
# ~290 MB, for building custom ops) and libclang (~60 MB, a build tool TensorFlow requires).
# The variant's arguments are declared here, not above: the layers before this one are then the
# same for both variants, and built once.
ARG VARIANT=cpu
ARG EXTRAS=openvino
COPY pyproject.toml README.md /src/
RUN case "${VARIANT}" in \
        cpu) tensorflow=tensorflow-cpu ;; \
        gpu) tensorflow="tensorflow[and-cuda]" ;; \
        *) echo "VARIANT must be cpu or gpu, not ${VARIANT}" >&2; exit 1 ;; \
    esac \
    && /opt/venv/bin/python -c "import tomllib; project = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']; extras = [r for e in '${EXTRAS}'.split(',') if e for r in project['optional-dependencies'][e]]; print('\n'.join(r for r in project['dependencies'] + extras if not r.startswith('tensorflow')))" >/tmp/requirements.txt \
    && /opt/venv/bin/pip install "${tensorflow}>=2.21,<2.22" -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall -y libclang \
    && rm -rf /opt/venv/lib/python3*/site-packages/tensorflow/include /tmp/requirements.txt
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
# One worker per container: the model and the batch queue live in the process. On an empty store
# it trains first, on /srv/data (a mounted folder of class sub-folders, else filled with
# flower_photos); when it cannot, it says why and serves, live but not ready.
CMD ["flowers-serve", "--train-if-empty", "--host", "0.0.0.0", "--port", "8000"]
COPY --from=builder /opt/venv /opt/venv
