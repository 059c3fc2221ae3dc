# ProcessCube Task Gateway: the gateway with its embedded engine and demo data, configured by environment only.
#
#   docker build --network host --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t processcube-task-gateway .
#   docker run -p 8080:8080 -v gateway-data:/data processcube-task-gateway
#
# Needs BuildKit (DOCKER_BUILDKIT=1 on Docker 20.10; the default since 23.0). No `# syntax=` line on purpose: the
# builder's own Dockerfile frontend is used, so building needs no registry beyond the base image's (BASE_IMAGE:
# any Debian bookworm, e.g. the one tools/docker_base.sh makes from a Debian mirror). The optional secret `ca` is
# a CA bundle for TLS-intercepting proxies: it is mounted only while apt, npm and pip download, never stored in a
# layer. Details: docs/container.md.
ARG BASE_IMAGE=debian:bookworm-slim

# --- browser assets: npm ci from package-lock.json (only the build reads them; copied out by the build stage) ---
FROM ${BASE_IMAGE} AS assets
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=ca \
    set -eu; \
    if [ -s /run/secrets/ca ]; then \
      apt_tls="-o Acquire::https::CAInfo=/run/secrets/ca"; export NODE_EXTRA_CA_CERTS=/run/secrets/ca; \
    else apt_tls=; fi; \
    apt-get $apt_tls update -qq; \
    apt-get $apt_tls install -y -qq --no-install-recommends nodejs npm ca-certificates > /dev/null; \
    npm ci --no-audit --no-fund --ignore-scripts --loglevel=error; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /root/.npm

# --- Python: the locked runtime dependencies (hashes required) in /opt/venv, the project installed without deps ---
FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY requirements/runtime.txt requirements/dev.txt /src/requirements/
RUN --mount=type=secret,id=ca \
    set -eu; \
    if [ -s /run/secrets/ca ]; then \
      apt_tls="-o Acquire::https::CAInfo=/run/secrets/ca"; export PIP_CERT=/run/secrets/ca; \
    else apt_tls=; fi; \
    apt-get $apt_tls update -qq; \
    apt-get $apt_tls install -y -qq --no-install-recommends python3 python3-venv > /dev/null; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --quiet --require-hashes --no-deps -r /src/requirements/runtime.txt; \
    # setuptools only to install the project below (its pin and hashes from the dev lock); removed again there
    awk '/^setuptools==/ {p = 1} p {print} p && !/\\$/ {exit}' /src/requirements/dev.txt > /tmp/setuptools.txt; \
    /opt/venv/bin/pip install --quiet --require-hashes --no-deps -r /tmp/setuptools.txt
# The code reads files next to its packages (openapi/, schema/, examples/processes/, gateway/static/), so the
# project is installed in place (editable) from /app, not copied into site-packages without them.
COPY . /app
WORKDIR /app
RUN --mount=type=bind,from=assets,source=/src/node_modules,target=/tmp/node_modules \
    set -eu; \
    /opt/venv/bin/pip install --quiet --no-deps --no-build-isolation -e .; \
    /opt/venv/bin/python -m gateway.assets --node-modules /tmp/node_modules; \
    /opt/venv/bin/pip uninstall --quiet -y setuptools pip; \
    rm -rf /app/build /tmp/setuptools.txt; \
    find /app -name __pycache__ -prune -exec rm -rf {} +; \
    /opt/venv/bin/python -m compileall -q -j 0 /app/gateway /app/embedded_engine > /dev/null

# --- runtime: Debian's python3 and the two directories above; no compiler, no node, no pip ---
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN --mount=type=secret,id=ca \
    set -eu; \
    apt_tls=; [ -s /run/secrets/ca ] && apt_tls="-o Acquire::https::CAInfo=/run/secrets/ca"; \
    apt-get $apt_tls update -qq; \
    # ca-certificates: TLS to an engine, an authority (JWKS) or Redis (rediss://) that use public certificates
    apt-get $apt_tls install -y -qq --no-install-recommends python3 ca-certificates > /dev/null; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log; \
    groupadd --gid 10001 gateway; \
    useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin gateway; \
    mkdir -p /data/engine; chown -R 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    GATEWAY_EMBEDDED_ENGINE_DATA_DIR=/data/engine \
    GATEWAY_EMBEDDED_ENGINE_DEMO=true \
    GATEWAY_LOG_FORMAT=json
WORKDIR /app
# The engine's SQLite file (embedded engine only). A named volume takes the directory's owner (10001) from here;
# a bind-mounted host directory must be writable by uid 10001.
VOLUME /data
EXPOSE 8080
USER 10001:10001
# Liveness only (200 while the process serves); readiness (engine reachable, ...) is /readyz, for load balancers.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('GATEWAY_PORT', '8080'), timeout=4)"]
# The gateway is PID 1 and handles SIGTERM itself (uvicorn's handler: stop taking requests, drain, stop the
# embedded engine), so exec form, no shell in between; `docker run --init` is not needed.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "gateway"]
