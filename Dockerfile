# usdcop-exporter sidecar image.
#   docker build -t usdcop-exporter .
#   docker run --rm -p 127.0.0.1:9322:9322 usdcop-exporter
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid so mounted volumes can be prepared for it.
RUN groupadd --system --gid 10001 usdcop \
 && useradd --system --uid 10001 --gid usdcop --home-dir /var/lib/usdcop-exporter \
            --create-home --shell /usr/sbin/nologin usdcop

WORKDIR /src
COPY pyproject.toml constraints.txt README.md LICENSE* ./
COPY exporter ./exporter
# The versions the tests ran with (constraints.txt, refreshed by scripts/lock.sh).
RUN pip install -c constraints.txt . && rm -rf /src

COPY services.yaml /etc/usdcop-exporter/services.yaml

# State that must survive restarts (SQLite store, spool, checkpoints) lives under
# the user's home; mount a volume there.
ENV EXPORTER_CONFIG=/etc/usdcop-exporter/services.yaml \
    EXPORTER_LISTEN=0.0.0.0:9322 \
    AUDIT_SQLITE_PATH=/var/lib/usdcop-exporter/usdcop-audit.sqlite3 \
    AUDIT_SPOOL_DIR=/var/lib/usdcop-exporter/spool \
    AUDIT_CHECKPOINT_DIR=/var/lib/usdcop-exporter/checkpoints \
    LOG_FORMAT=json

WORKDIR /var/lib/usdcop-exporter
USER usdcop:usdcop
VOLUME ["/var/lib/usdcop-exporter"]
EXPOSE 9322

# The slim image has no curl; Python is there anyway.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9322/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["usdcop-exporter"]
CMD ["serve"]
