#!/usr/bin/env bash
# End-to-end test of the container image (`make docker-test`; slow, not part of `make test`):
#   ensure a Docker daemon, build the image (on a local Debian base when no registry is reachable), run it, wait
#   for its HEALTHCHECK and /livez, list user tasks over GraphQL, reserve and finish one over REST, check the
#   user, the size, the volume, a clean and quick stop on SIGTERM and a restart on the same volume; then print a
#   summary. Needs root when it has to install docker.io/debootstrap or start dockerd.
# Environment: IMAGE (tag to build, processcube-task-gateway:test), BASE_IMAGE (debian:bookworm-slim),
#   LOCAL_BASE (processcube-base:bookworm, built by tools/docker_base.sh when BASE_IMAGE cannot be pulled),
#   CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt, passed to the build as the secret `ca` when it exists),
#   MAX_IMAGE_MB (500), KEEP=1 (leave the container and volume for a look).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-processcube-task-gateway:test}
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
BASE_IMAGE_WANTED=$BASE_IMAGE
LOCAL_BASE=${LOCAL_BASE:-processcube-base:bookworm}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
MAX_IMAGE_MB=${MAX_IMAGE_MB:-500}
NAME=gateway-docker-test-$$
VOLUME=$NAME-data
summary=()
failures=0

say() { printf '[docker-test] %s\n' "$*" >&2; }
ok() { summary+=("ok    $*"); say "ok: $*"; }
fail() { summary+=("FAIL  $*"); say "FAIL: $*"; failures=$((failures + 1)); }
info() { summary+=("info  $*"); say "$*"; }
print_summary() {
  echo
  echo "== docker-test summary =="
  printf '%s\n' "${summary[@]}"
  if ((failures)); then echo "RESULT: $failures check(s) failed"; else echo "RESULT: all checks passed"; fi
}
die() {
  fail "$*"
  print_summary
  exit 1
}
json() { python3 -c "import json, sys; data = json.load(sys.stdin); print($1)"; }

# --- tools and daemon ---------------------------------------------------------------------------------------
missing=()
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || die "no Docker daemon answers and dockerd is not installed"
  log=/tmp/dockerd-docker-test.log
  say "starting dockerd (vfs, no iptables, no bridge), log: $log"
  nohup dockerd --storage-driver=vfs --iptables=false --bridge=none >"$log" 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s (see $log)"
fi

# BuildKit is needed (RUN --mount). A client >= 23 builds with BuildKit only through the buildx plugin; an older
# one (Debian's docker.io 20.10 is /usr/bin/docker) has it built in, with DOCKER_BUILDKIT=1.
build=()
for client in docker /usr/bin/docker; do
  command -v "$client" >/dev/null 2>&1 || continue
  version=$("$client" version --format '{{.Client.Version}}' 2>/dev/null || true)
  if "$client" buildx version >/dev/null 2>&1; then
    build=("$client" buildx build --load)
  elif [[ ${version%%.*} =~ ^[0-9]+$ ]] && ((${version%%.*} < 23)); then
    build=(env DOCKER_BUILDKIT=1 "$client" build)
  fi
  ((${#build[@]})) && break
done
((${#build[@]})) || die "no Docker client that can build with BuildKit (install the buildx plugin)"
info "docker: server $(docker version --format '{{.Server.Version}}'), builder: ${build[*]}"

# --- base image and build -----------------------------------------------------------------------------------
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  info "base image: $BASE_IMAGE (present)"
elif timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
  info "base image: $BASE_IMAGE (pulled)"
else
  say "$BASE_IMAGE cannot be pulled: building $LOCAL_BASE with tools/docker_base.sh"
  start=$SECONDS
  tools/docker_base.sh "$LOCAL_BASE" >&2 || die "tools/docker_base.sh failed"
  BASE_IMAGE=$LOCAL_BASE
  info "base image: $BASE_IMAGE ($BASE_IMAGE_WANTED not pullable; tools/docker_base.sh: $((SECONDS - start)) s, cached when 0)"
fi

build_args=(--network host --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE")
[[ -s $CA_BUNDLE ]] && build_args+=(--secret "id=ca,src=$CA_BUNDLE")
build_log=$(mktemp /tmp/docker-test-build.XXXXXX.log)
say "building $IMAGE (log: $build_log)"
start=$SECONDS
if ! "${build[@]}" --progress plain "${build_args[@]}" . >"$build_log" 2>&1; then
  tail -30 "$build_log" >&2
  die "docker build failed (log: $build_log)"
fi
ok "build: $((SECONDS - start)) s (cached layers count as done)"

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
size_mb=$((size / 1000000))
if ((size_mb <= MAX_IMAGE_MB)); then ok "image size: $size_mb MB (limit $MAX_IMAGE_MB)"; else fail "image size: $size_mb MB > $MAX_IMAGE_MB"; fi
layers=$(docker image inspect -f '{{len .RootFS.Layers}}' "$IMAGE")
info "image layers: $layers"
# The CA bundle handed to the build must be in no layer of the image: compare against the image's own bundle.
if [[ -s $CA_BUNDLE ]]; then
  image_ca=$(docker run --rm --entrypoint cat "$IMAGE" /etc/ssl/certs/ca-certificates.crt | sha256sum | cut -c1-64)
  host_ca=$(sha256sum <"$CA_BUNDLE" | cut -c1-64)
  if [[ $image_ca != "$host_ca" ]] && ! docker run --rm --entrypoint ls "$IMAGE" /run/secrets/ca >/dev/null 2>&1; then
    ok "the build's CA bundle is not in the image (its bundle is Debian's ca-certificates)"
  else
    fail "the CA bundle given to the build ended up in the image"
  fi
fi

# --- run ----------------------------------------------------------------------------------------------------
cleanup() {
  if [[ -n ${KEEP:-} ]]; then
    say "KEEP=1: container $NAME and volume $VOLUME left in place"
    return
  fi
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
engine_port=$(free_port)
# The demo as `make run` serves it: anonymous callers act as the engine's root user. Never in production, so the
# image does not set it (without it, anonymous callers get UNAUTHENTICATED for tasks: checked below).
run_args=(-d --name "$NAME" -v "$VOLUME:/data" --health-interval 2s --health-start-period 60s
  -e GATEWAY_UNSAFE_ANONYMOUS_ROOT=true)
if docker network inspect bridge >/dev/null 2>&1; then
  # the image as shipped (0.0.0.0:8080 inside), published on loopback only
  run_args+=(-p "127.0.0.1:$port:8080")
  network="bridge, published on 127.0.0.1:$port"
else
  # a daemon without a bridge (dockerd --bridge=none): the host's network, so the gateway listens on loopback only
  run_args+=(--network host -e GATEWAY_HOST=127.0.0.1 -e "GATEWAY_PORT=$port"
    -e "GATEWAY_EMBEDDED_ENGINE_PORT=$engine_port")
  network="host network, 127.0.0.1:$port, engine on :$engine_port"
fi
GW=http://127.0.0.1:$port
docker run "${run_args[@]}" "$IMAGE" >/dev/null
info "container $NAME ($network)"

wait_healthy() {
  local start=$SECONDS status
  while ((SECONDS - start < 90)); do
    status=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$NAME")
    [[ $status == "running healthy" ]] && { echo $((SECONDS - start)); return 0; }
    [[ $status == running* ]] || { docker logs --tail 30 "$NAME" >&2; return 1; }
    sleep 0.5
  done
  docker logs --tail 30 "$NAME" >&2
  return 1
}
if took=$(wait_healthy); then ok "HEALTHCHECK: healthy after ${took} s"; else die "the container did not become healthy"; fi

code=$(curl -s -o /dev/null -w '%{http_code}' "$GW/livez")
[[ $code == 200 ]] && ok "GET /livez: 200" || fail "GET /livez: $code"
readyz=$(curl -s -w ' %{http_code}' "$GW/readyz")
[[ $readyz == *' 200' ]] && ok "GET /readyz: 200" || fail "GET /readyz: $readyz"

# user is checked on the running process (PID 1) and on a new one
uid1=$(docker exec "$NAME" awk '/^Uid:/ {print $2}' /proc/1/status)
uid_exec=$(docker exec "$NAME" id -u)
if [[ $uid1 != 0 && $uid_exec != 0 ]]; then ok "runs as non-root (PID 1 uid $uid1, image USER $(docker image inspect -f '{{.Config.User}}' "$IMAGE"))"; else fail "runs as root (PID 1 uid $uid1)"; fi
cmd1=$(docker exec "$NAME" sh -c "tr '\\0' ' ' < /proc/1/cmdline")
cmd1=${cmd1% }
[[ $cmd1 == *"-m gateway"* ]] && ok "PID 1 is the gateway itself ($cmd1)" || fail "PID 1 is $cmd1"

graphql=$(curl -s "$GW/graphql" -H 'Content-Type: application/json' \
  -d '{"query": "{ userTasks(first: 5) { totalCount edges { node { id name processModelId } } } }"}')
count=$(json 'len(data["data"]["userTasks"]["edges"])' <<<"$graphql" 2>/dev/null || echo 0)
total=$(json 'data["data"]["userTasks"]["totalCount"]' <<<"$graphql" 2>/dev/null || echo 0)
if ((count > 0)); then ok "GraphQL userTasks(first: 5): $count of $total demo tasks"; else fail "GraphQL userTasks: ${graphql:0:300}"; fi

code=$(curl -s -o /dev/null -w '%{http_code}' "$GW/static/vendor/graphiql/graphiql.min.js")
page=$(curl -s -H 'Accept: text/html' "$GW/graphql")
if [[ $code == 200 && $page == *"/static/vendor/"* ]]; then ok "GraphiQL page and its vendored assets served (offline)"; else fail "GraphiQL assets: $code"; fi

# REST: a waiting approval, reserved and finished with a result that fits its form
task=$(curl -s "$GW/api/v1/user-tasks?processModelId=ApprovalProcess&limit=1")
id=$(json 'data["items"][0]["id"]' <<<"$task" 2>/dev/null || true)
if [[ -z $id ]]; then
  fail "REST list: ${task:0:300}"
else
  result=$(json '
json.dumps({f["id"]: (
    [v["id"] for v in f.get("enumValues") or []][:1] or [None])[0] if f["type"] == "enum" else
    True if f["type"] == "boolean" else 1 if f["type"] in ("long", "number", "integer") else
    "2026-01-01" if f["type"] == "date" else "checked in the container test"
    for f in data["items"][0]["formFields"]})' <<<"$task")
  reserve=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$GW/api/v1/user-tasks/$id/reservation")
  finish=$(curl -s -w '\n%{http_code}' -X POST "$GW/api/v1/user-tasks/$id/finish" -H 'Content-Type: application/json' \
    -H "Idempotency-Key: docker-test-$$" -d "{\"result\": $result}")
  state=$(json 'data["task"]["state"]' <<<"${finish%$'\n'*}" 2>/dev/null || true)
  if [[ $reserve == 200 && ${finish##*$'\n'} == 200 && $state == finished ]]; then
    ok "REST reserve (200) and finish (200, state $state) of task $id with $result"
  else
    fail "REST reserve $reserve, finish: ${finish:0:300}"
  fi
fi

files=$(docker exec "$NAME" ls /data/engine)
[[ -n $files ]] && ok "engine data in the volume: /data/engine/{${files//$'\n'/,}}" || fail "nothing in /data/engine"
# (the logs are read into a variable first: `docker logs | grep -m1` would fail the pipeline with SIGPIPE)
logs=$(docker logs "$NAME" 2>&1)
not_json=$(python3 -c '
import json, sys
for line in sys.stdin:
    try:
        json.loads(line)
    except ValueError:
        print(line.rstrip()[:200])
        break' <<<"$logs")
if [[ -z $not_json ]]; then
  ok "logs: $(wc -l <<<"$logs") lines, each a JSON object (GATEWAY_LOG_FORMAT=json)"
else
  fail "a log line that is not JSON: $not_json"
fi

count_query='{"query": "{ userTasks(first: 1) { totalCount } }"}'
count_field='data["data"]["userTasks"]["totalCount"]'
waiting=$(curl -s "$GW/graphql" -H 'Content-Type: application/json' -d "$count_query" | json "$count_field" 2>/dev/null \
  || echo '?')

# --- SIGTERM ------------------------------------------------------------------------------------------------
stop_started=$(date +%s.%N)
docker stop -t 30 "$NAME" >/dev/null
stop_seconds=$(python3 -c "import time; print(f'{time.time() - $stop_started:.1f}')")
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
if [[ $exit_code == 0 ]] && python3 -c "import sys; sys.exit(not $stop_seconds < 10)"; then
  ok "docker stop (SIGTERM): exit code 0 after $stop_seconds s"
else
  fail "docker stop (SIGTERM): exit code $exit_code after $stop_seconds s"
fi
logs=$(docker logs "$NAME" 2>&1)
if [[ $logs == *Traceback* ]]; then
  fail "a traceback in the logs: $(grep -A5 Traceback <<<"$logs" | head -6)"
fi

# --- restart on the same volume: the finished task stays finished, the demo is not seeded twice -------------
docker start "$NAME" >/dev/null
if took=$(wait_healthy); then
  again=$(curl -s "$GW/graphql" -H 'Content-Type: application/json' -d "$count_query" | json "$count_field" 2>/dev/null \
    || echo '?')
  state=$(curl -s "$GW/api/v1/user-tasks/${id:-none}" | json 'data["state"]' 2>/dev/null || echo '?')
  if [[ $again == "$waiting" && $state == finished ]]; then
    ok "restart on the same volume: healthy after ${took} s, task $id still finished, $again waiting tasks as before"
  else
    fail "restart on the same volume: task $id $state, $again waiting tasks (before the stop: $waiting)"
  fi
  docker stop -t 30 "$NAME" >/dev/null
else
  fail "the container did not become healthy again after a restart"
fi

# --- the image's own default: anonymous callers see no task -------------------------------------------------
docker rm -f "$NAME" >/dev/null
run_args=("${run_args[@]/GATEWAY_UNSAFE_ANONYMOUS_ROOT=true/GATEWAY_UNSAFE_ANONYMOUS_ROOT=}")
docker run "${run_args[@]}" "$IMAGE" >/dev/null
if wait_healthy >/dev/null; then
  code=$(curl -s "$GW/graphql" -H 'Content-Type: application/json' -d "$count_query" \
    | json 'data["errors"][0]["extensions"]["code"]' 2>/dev/null || echo '?')
  [[ $code == UNAUTHENTICATED ]] && ok "without GATEWAY_UNSAFE_ANONYMOUS_ROOT, anonymous callers get $code" \
    || fail "without GATEWAY_UNSAFE_ANONYMOUS_ROOT, anonymous callers get $code"
  docker stop -t 30 "$NAME" >/dev/null
else
  fail "the container without GATEWAY_UNSAFE_ANONYMOUS_ROOT did not become healthy"
fi

print_summary
((failures == 0))
