/**
 * Memory per idle connection, alone (the last part of `pnpm bench capacity`): 10,000 subscribed sockets
 * that receive nothing, on alarmcast's edge and on the Socket.IO peer's server, fresh processes each.
 *
 *   cd tests/bench && npx tsx --conditions=source src/idle-memory.ts [--no-peer]
 *
 * Prints one line per system; writes nothing. EDGE_WORKERS / INGEST_WORKERS as for `pnpm bench`.
 */
import { parseArgs } from 'node:util';
import { benchWorkers } from './stacks.js';
import { idleConnections } from './scenarios.js';

const { values } = parseArgs({ options: { 'no-peer': { type: 'boolean', default: false } } });
const idle = await idleConnections({ quick: false, rounds: 1, peer: !values['no-peer'] });
console.log(`workers: ${JSON.stringify(benchWorkers())}`);
for (const x of idle) {
  console.log(
    `${x.system}: ${x.sockets} idle sockets, ${x.idleKbPerConnection} KB per connection ` +
      `(${x.marginalKbPerConnection} KB each for the second half)`,
  );
}
process.exit(0);
