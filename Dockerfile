# One image for the three services and the CLI (they share the workspace); the service is chosen by the
# command, e.g. `node services/ws-edge/dist/main.js`. Multi-stage: the build stage installs everything,
# compiles the workspace to JavaScript (pnpm build) and assembles the production tree (scripts/prod-tree.sh:
# compiled output, migrations, production dependencies only); the runtime stage holds only that tree and runs
# as the unprivileged `node` user. No TypeScript, tsx, vitest, vite or test packages at runtime.
FROM node:20.20-bookworm-slim AS build
WORKDIR /src
RUN npm i -g pnpm@10.20.0
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json tsconfig.base.json turbo.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
COPY packages ./packages
COPY services ./services
COPY tests ./tests
# postinstall generates the Prisma client and builds the console page
RUN pnpm install --frozen-lockfile
RUN pnpm build && bash scripts/prod-tree.sh /app

FROM node:20.20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=build --chown=root:root /app /app
USER node
CMD ["node", "services/alarm-ingest/dist/main.js"]
