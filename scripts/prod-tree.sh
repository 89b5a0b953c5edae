#!/usr/bin/env bash
# Assembles what the production image holds, in OUT: the compiled JavaScript of the four deployables and the
# workspace packages they use (dist/, the console's lib/ and its built page), the migrations, and production
# dependencies only (no TypeScript, tsx, vitest, prisma CLI, vite or test packages). The Dockerfile runs it
# in its build stage and copies OUT into the runtime stage; scripts/check-image.sh runs it here, where there
# is no Docker engine, and starts the result.
#
# Usage: scripts/prod-tree.sh OUT   (after `pnpm install` and `pnpm build`; extra pnpm install flags in
# PROD_INSTALL_FLAGS, e.g. --offline)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
OUT="${1:?usage: scripts/prod-tree.sh OUT}"
DEPLOYABLES=(alarm-ingest recipient-resolver ws-edge admin-cli)

rm -rf "$OUT"
mkdir -p "$OUT/prisma"
cp package.json pnpm-lock.yaml pnpm-workspace.yaml "$OUT/"
cp -r prisma/migrations "$OUT/prisma/migrations"
# Every workspace's manifest, so that the lockfile matches the workspace; compiled output where there is one.
for ws in packages/* services/* tests/*; do
  mkdir -p "$OUT/$ws"
  cp "$ws/package.json" "$OUT/$ws/"
  for built in dist lib; do
    if [ -d "$ws/$built" ] && [ "$ws" != tests/e2e ] && [ "$ws" != tests/bench ]; then
      cp -r "$ws/$built" "$OUT/$ws/"
    fi
  done
done
[ -f "$OUT/packages/console/dist/index.html" ] || { log "packages/console/dist (the page) is missing: run pnpm install"; exit 1; }
for d in "${DEPLOYABLES[@]}"; do
  [ -f "$OUT/services/$d/dist/main.js" ] || { log "services/$d/dist is missing: run pnpm build"; exit 1; }
done

filters=()
# --filter-prod: the deployables and the workspace packages they depend on in production (not the testing
# package, which they list as a devDependency).
for d in "${DEPLOYABLES[@]}"; do filters+=(--filter-prod "@alarmcast/$d..."); done
cd "$OUT"
# --ignore-scripts: the Prisma client is already generated and compiled (packages/db/dist/generated) and the
# console page built; nothing needs to run at install.
# shellcheck disable=SC2086
pnpm install --prod --frozen-lockfile --ignore-scripts --config.confirmModulesPurge=false ${PROD_INSTALL_FLAGS:-} "${filters[@]}" >/dev/null
# The manifests of workspaces the deployables do not use were only needed for the lockfile.
rm -rf tests packages/testing packages/client
log "production tree in $OUT: $(du -sh . | cut -f1)"
