# lexi-bot: a small, non-root image. Build: docker build -t lexi-bot .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=3000
RUN useradd --create-home --uid 10001 lexi
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER lexi
WORKDIR /home/lexi
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import os,urllib.request;urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/healthz',timeout=2)"
# SIGTERM makes the bot stop taking work, finish decisions in flight, and exit 0.
STOPSIGNAL SIGTERM
CMD ["lexi-bot", "run"]
