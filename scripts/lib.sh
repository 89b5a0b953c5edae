# Shared by scripts/start.sh and scripts/test.sh. Every step is idempotent: safe on a fresh machine and on
# one where everything is already up.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# corepack's signature check fails against the registry mirror on our machines; npx fetches a pinned pnpm.
PNPM_VERSION=10.20.0
pnpm() {
  if command -v pnpm >/dev/null 2>&1 && [ "$(command pnpm --version 2>/dev/null)" = "$PNPM_VERSION" ]; then
    command pnpm "$@"
  else
    npx -y "pnpm@$PNPM_VERSION" "$@"
  fi
}

# turbo phones home with telemetry by default; these machines have no route for it anyway.
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1

log() { printf '\033[1;34m[alarmcast]\033[0m %s\n' "$*" >&2; }

# Postgres and Redis as ENVIRONMENT.md describes them: started if they are not answering.
ensure_services() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432 || { log "PostgreSQL is not reachable on 127.0.0.1:5432"; return 1; }
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { log "Redis is not reachable on 127.0.0.1:6379"; return 1; }
  # BullMQ must never have its keys evicted; user logs want small stream nodes (infra/redis/redis.conf).
  redis-cli -h 127.0.0.1 -p 6379 config set maxmemory-policy noeviction >/dev/null
  redis-cli -h 127.0.0.1 -p 6379 config set stream-node-max-bytes 1024 >/dev/null
}

# Installs the workspace when the lockfile changed since the last install (or nothing is installed).
ensure_install() {
  cd "$ROOT"
  local stamp="node_modules/.alarmcast-lock-sha"
  local want
  want="$(sha256sum pnpm-lock.yaml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d packages/db/src/generated ]; then
    log "installing dependencies (pnpm $PNPM_VERSION)"
    pnpm install --frozen-lockfile
    echo "$want" >"$stamp"
  fi
}

# Compiles the workspace to JavaScript (dist/) for the built services and CLI; turbo's cache makes it a
# no-op when no source changed since the last build.
ensure_build() {
  cd "$ROOT"
  pnpm exec turbo run build --output-logs=errors-only >/dev/null
}

# Debian's Chromium for the console's browser test (playwright's own browser download cannot work here).
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  log "installing chromium (Debian package) for the browser tests"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
}

# Debian's Prometheus (with promtool) for tests/e2e/test/prometheus.test.ts, which runs the alert rules and
# dashboard queries against a real Prometheus (its own, on a free port in a temporary directory; never a
# system daemon).
ensure_prometheus() {
  command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && return 0
  log "installing prometheus (Debian package, with promtool) for the monitoring test"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  fi
}
