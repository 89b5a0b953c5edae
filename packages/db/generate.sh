#!/usr/bin/env bash
# Generates the Prisma client (TypeScript source, into src/generated) from prisma/schema.prisma. The build
# runs it first too: at a fresh install the root postinstall build can run before this package's
# postinstall, and dist/ would then lack the client.
# The Prisma 7 CLI downloads a native schema engine at start, which these machines cannot fetch; `generate`
# never uses it, and pointing PRISMA_SCHEMA_ENGINE_BINARY at any existing file skips the download.
set -euo pipefail
cd "$(dirname "$0")"
export PRISMA_SCHEMA_ENGINE_BINARY="${PRISMA_SCHEMA_ENGINE_BINARY:-/bin/true}"
exec prisma generate --schema ../../prisma/schema.prisma >/dev/null
