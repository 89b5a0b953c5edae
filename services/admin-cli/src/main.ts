import { createPrismaClient, type PrismaClient } from '@alarmcast/db';
import { parseCommandLine, usage } from './args.js';
import { runCommand } from './commands.js';
import { parseCliConfig } from './config.js';
import { EXIT_CODES, errorBody, toCliError } from './errors.js';

async function main(argv: readonly string[]): Promise<number> {
  let prisma: PrismaClient | undefined;
  try {
    const line = parseCommandLine(argv);
    if (line.kind === 'help') {
      process.stdout.write(usage());
      return 0;
    }
    const config = parseCliConfig(process.env);
    // Connects lazily, on the first query: `migrate` gets one too without needing the database to exist.
    prisma = createPrismaClient(config.databaseUrl, { poolMax: 4 });
    const result = await runCommand(prisma, config, line.name, line.args);
    // Indented for a person at a terminal, one line for jq and scripts.
    process.stdout.write(`${JSON.stringify(result, null, process.stdout.isTTY ? 2 : undefined)}\n`);
    return 0;
  } catch (err) {
    const error = toCliError(err);
    process.stderr.write(`${JSON.stringify(errorBody(error))}\n`);
    return EXIT_CODES[error.code];
  } finally {
    await prisma?.$disconnect().catch(() => undefined);
  }
}

// exitCode, not process.exit(): a large result written to a pipe must be flushed before the process ends.
process.exitCode = await main(process.argv.slice(2));
