# One image for the whole network: every Maillage service, the Kafka brokers (`maillage broker`) and the
# PostgreSQL server (`maillage database-server`); the command chooses which one runs.
#
# BASE is any Debian bookworm image: the public `debian:bookworm-slim` by default; where no registry is
# reachable, one made locally with debootstrap (`make compose-test` does; docs/deploy.md says how).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive \
    PATH=/opt/maillage/venv/bin:$PATH \
    XDG_CACHE_HOME=/opt/maillage/cache \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates openjdk-17-jre-headless maven postgresql-15 \
    && rm -rf /var/lib/apt/lists/*
# Extra CAs of the building machine, if any (deploy/ca-certificates/README.md); pip trusts the system's store.
COPY deploy/ca-certificates/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY deploy ./deploy
COPY schemas ./schemas
# Kafka's jars are fetched once here by Maven, then Maven goes: the image runs offline.
RUN python3 -m venv /opt/maillage/venv \
    && pip install . \
    && python -c "from maillage.cli.kafka_local import ensure_jars; print(ensure_jars())" \
    && chmod -R a+rX /opt/maillage/cache \
    && apt-get purge -y --auto-remove maven && rm -rf /root/.m2 \
    && useradd --system --uid 10001 --home-dir /data --no-create-home maillage \
    && mkdir -p /data /keys && chown maillage:maillage /data /keys
USER maillage
ENV MAILLAGE_LISTEN_HOST=0.0.0.0 MAILLAGE_DATA_DIR=/data
ENTRYPOINT ["maillage"]
