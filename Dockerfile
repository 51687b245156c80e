# lexi-bot: a small, non-root image. Build: docker build -t lexi-bot .
#
# The base is pinned by digest, so a rebuild gets the same Python and Debian until we move it on purpose:
# python:3.11-slim-bookworm (Python 3.11.16, Debian 12) as published on 2026-08-25, the multi-platform index that
# Docker's official-images repo-info records for that tag. Both stages use the same one. To refresh (README →
# Dependencies): `docker buildx imagetools inspect python:3.11-slim-bookworm`, copy its top "Digest:" into both FROM
# lines, rebuild and run the suite.
FROM python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The build backend from its hashed lock, then the bot's wheel with it (no unpinned download at build time).
COPY requirements-build.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=3000 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 lexi
# jemalloc in place of glibc's malloc: under steady work glibc's heap fragments and a long-running bot's memory creeps
# up; on jemalloc it grew about half as much over an hour, though alike in its second half (README → Memory). Debian
# 12's package (5.3.0; not pinned to a revision, so that a security update cannot break the build), linked to one path
# whatever the platform, and preloaded (the bot logs "memory allocator: jemalloc" once it serves).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/lib/*-linux-gnu/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2 \
    && test -e /usr/local/lib/libjemalloc.so.2
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2
# Every dependency at its locked version, checked against its hash; then the bot alone, whose dependencies are those.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels && pip check
USER lexi
WORKDIR /home/lexi
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import os,urllib.request;urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/healthz',timeout=2)"
# SIGTERM makes the bot stop taking work, finish decisions in flight, and exit 0.
STOPSIGNAL SIGTERM
CMD ["lexi-bot", "run"]
