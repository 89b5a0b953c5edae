# One image for the three services (they share the workspace); the service is chosen by the command.
# Runs TypeScript from source with tsx, as in development: packages are consumed from source.
FROM node:20.20-bookworm-slim
WORKDIR /app
RUN npm i -g pnpm@10.20.0
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json tsconfig.base.json ./
COPY prisma ./prisma
COPY packages ./packages
COPY services ./services
RUN pnpm install --frozen-lockfile
ENV NODE_ENV=production HOST=0.0.0.0
USER node
CMD ["node", "--conditions=source", "--import", "tsx", "services/alarm-ingest/src/main.ts"]
