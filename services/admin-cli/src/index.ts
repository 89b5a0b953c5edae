// For scripts that provision programmatically (benchmarks, seeds): the CLI's commands without the process.
export { parseCliConfig, requireJwtSecret, type CliConfig } from './config.js';
export { parseCommandLine, COMMANDS, type CommandName, type CommandArgs } from './args.js';
export { HANDLERS, runCommand, type DemoResult } from './commands.js';
export { DEMO_WORLD, DEMO_SLUG } from './demo-world.js';
export { CliError, EXIT_CODES, toCliError, type CliErrorCode } from './errors.js';
