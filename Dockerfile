# Nexq: the `nexq` command in a slim Python 3.11 image, run as a non-root user.
#
#   docker build -t nexq .
#   docker run -p 8080:8080 -v nexq-data:/data nexq run      # all-in-one, embedded store in /data
#   docker run nexq worker --store pogocache://:PASSWORD@HOST:9401 --app mymodule:app
#
# deploy/compose.yaml runs it next to Pogocache with two workers. Your app's
# module must be importable in the container: copy it in a derived image
# (FROM nexq) or mount it and put its directory on PYTHONPATH.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY nexq ./nexq
COPY static ./static
RUN pip install . \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/nexq nexq \
    && mkdir -p /data \
    && chown nexq:nexq /data

USER nexq
# In a container the API listens on every interface; the embedded store
# (used only without --store) lives on the /data volume.
ENV NEXQ_HOST=0.0.0.0 \
    NEXQ_PORT=8080 \
    NEXQ_DATA_DIR=/data
EXPOSE 8080
VOLUME ["/data"]

# /healthz answers 200 while the store is reachable, 503 when it is not.
# Only `nexq run` serves HTTP: disable this check for `nexq worker` containers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('NEXQ_PORT', '8080') + '/healthz', timeout=4)"]

ENTRYPOINT ["nexq"]
CMD ["run"]
