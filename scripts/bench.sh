#!/usr/bin/env bash
# `pnpm bench` (and `npm run bench`): the benchmark harness, after making sure Postgres and Redis run and the
# dependencies are installed, as `npm start` does. Arguments go to tests/bench/src/main.ts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_services
ensure_install
# Not `exec pnpm ...`: exec runs a binary from PATH, never lib.sh's `pnpm` function, so it failed on a machine
# without a global pnpm. tsx is a root devDependency, installed by ensure_install above; exec keeps Ctrl-C
# and the exit status going straight to the harness.
cd tests/bench
exec "$ROOT/node_modules/.bin/tsx" --conditions=source src/main.ts "$@"
