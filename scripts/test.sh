#!/usr/bin/env bash
# The whole test suite: typecheck, lint, then every package's tests against real Postgres and Redis.
# Uses DATABASE_URL / REDIS_URL when given, containers when a container runtime answers, otherwise the
# services on this machine (started if needed).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_services
ensure_install
ensure_chromium
ensure_prometheus

log "build, typecheck and lint"
pnpm exec turbo run build typecheck lint --output-logs=errors-only
pnpm exec prettier --check . >/dev/null || { log "prettier: files need formatting (pnpm format)"; pnpm exec prettier --check . || true; exit 1; }

log "tests"
rm -rf .test-results
status=0
pnpm exec turbo run test --concurrency=1 --continue --output-logs=full || status=$?

# One summary line for the whole run, from each package's vitest JSON report.
node -e '
  const fs = require("fs"); let passed = 0, failed = 0, skipped = 0;
  for (const f of fs.existsSync(".test-results") ? fs.readdirSync(".test-results") : []) {
    const r = JSON.parse(fs.readFileSync(".test-results/" + f, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
  }
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  if (passed === 0) process.exitCode = 1;
' || status=1
exit $status
