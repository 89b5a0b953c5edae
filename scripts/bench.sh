#!/usr/bin/env bash
# `pnpm bench` (and `npm run bench`): the benchmark harness, after making sure Postgres and Redis run and the
# dependencies are installed, as `npm start` does. Arguments go to tests/bench/src/main.ts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_services
ensure_install
exec pnpm --dir tests/bench exec tsx --conditions=source src/main.ts "$@"
