# collections-es service image. The same image runs the API (default CMD),
# the projection worker (`collections-es project`), the scheduler
# (`collections-es scheduler`) and the senders (`collections-es notify`,
# `collections-es deliver`); see docker-compose.yml. The HEALTHCHECK below is the
# API's; the workers' is `collections-es health ROLE` (ADR 0062).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY projections ./projections
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv
# The CJK font PDF letters are drawn in (COLLECTIONS_PDF_FONT's default path).
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --home-dir /app --uid 10001 collections \
 && mkdir /app/var && chown collections:collections /app/var
WORKDIR /app
USER collections
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["collections-es", "serve", "--host", "0.0.0.0", "--port", "8000"]
