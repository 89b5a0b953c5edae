// Prisma CLI configuration. The URL is only read by commands that talk to the database (migrate deploy on
// machines where Prisma's schema engine is available); alarmcast itself applies migrations with
// packages/db/src/migrate.ts, which keeps the same _prisma_migrations bookkeeping.
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/alarmcast' },
});
