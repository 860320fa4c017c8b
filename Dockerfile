# One image for the API, the worker and the migration job (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY lotline ./lotline
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY notifications ./notifications
COPY api ./api
RUN pip install . \
    && useradd --system --home-dir /var/lib/lotline --create-home lotline

USER lotline
WORKDIR /var/lib/lotline
EXPOSE 8000
CMD ["lotline", "api"]
