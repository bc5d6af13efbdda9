# One image for every Maillage service; the command chooses which one runs.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY deploy ./deploy
COPY schemas ./schemas
RUN pip install --no-cache-dir . && useradd --system maillage
USER maillage
ENV MAILLAGE_LISTEN_HOST=0.0.0.0 MAILLAGE_DATA_DIR=/data
ENTRYPOINT ["maillage"]
