# One slim image for every process of the stack; pick the process by its command, e.g.
#   docker run IMAGE python -m gateway serve --routes /app/routes.yaml
#   docker run IMAGE python -m legacy_monolith serve --host 0.0.0.0 --port 8000
FROM python:3.11-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY legacy_monolith ./legacy_monolith
COPY extracted ./extracted
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY --chown=app:app routes.yaml ./routes.yaml
RUN mkdir -p /app/var && chown app:app /app/var
USER app
EXPOSE 8080 9901 8000 8101 8102
CMD ["python", "-m", "gateway", "serve", "--routes", "/app/routes.yaml", "--host", "0.0.0.0", "--port", "8080", "--admin-host", "0.0.0.0", "--admin-port", "9901"]
