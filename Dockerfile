# flowrun: a small image that migrates its database on start and serves gRPC on 50051.
#   docker build -t flowrun .
#   docker run -p 50051:50051 flowrun                      # embedded SQLite in /data
#   docker run -p 50051:50051 -e FLOWRUN_DATABASE_URL=postgresql+asyncpg://user@db/flowrun flowrun
#   docker run -p 50051:50051 -v "$PWD/certs:/certs:ro" \
#     -e FLOWRUN_TLS_CERT_FILE=/certs/server.pem -e FLOWRUN_TLS_KEY_FILE=/certs/server-key.pem \
#     -e FLOWRUN_TLS_CLIENT_CA_FILE=/certs/ca.pem flowrun      # mutual TLS; SIGHUP re-reads the files
#   docker run -p 50051:50051 -v "$PWD/flowrun-auth:/etc/flowrun:ro" \
#     -e FLOWRUN_AUTH_TOKENS_FILE=/etc/flowrun/tokens.jsonl -e FLOWRUN_REQUIRE_AUTH=true flowrun
#   (tokens: `flowrun token create NAME --role ROLE --file flowrun-auth/tokens.jsonl`)
# An exact tag: the same Python patch release and Debian base on every build (bump it on purpose).
FROM python:3.11.17-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The runtime dependencies exactly as locked (scripts/lock writes the file from uv.lock), every
# file checked against its hash; in their own layer, so a code change does not reinstall them.
COPY requirements-runtime.txt ./
RUN pip install --require-hashes --no-deps -r requirements-runtime.txt
# Then flowrun itself, resolving nothing: its dependencies are all in place.
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY server ./server
COPY client ./client
RUN pip install --no-deps . && rm -rf /src

RUN useradd --create-home --uid 10001 flowrun && mkdir /data && chown flowrun /data
USER flowrun
WORKDIR /home/flowrun

# Listen on every interface inside the container; SQLite lives on the /data volume.
ENV FLOWRUN_HOST=0.0.0.0 \
    FLOWRUN_PORT=50051 \
    FLOWRUN_DATABASE_URL=sqlite+aiosqlite:////data/flowrun.db
VOLUME ["/data"]
EXPOSE 50051

# TLS: set FLOWRUN_TLS_CERT_FILE and FLOWRUN_TLS_KEY_FILE (and FLOWRUN_TLS_CLIENT_CA_FILE for
# mutual TLS) to PEM files mounted read-only, e.g. under /certs, readable by uid 10001.
# Authentication: FLOWRUN_AUTH_TOKENS_FILE (a mounted directory, so token changes reach the
# server); without it the server listens on 0.0.0.0 unauthenticated and warns loudly.
# Exec form: the server is PID 1 and gets SIGTERM directly for a graceful shutdown.
CMD ["flowrun-server"]
