import { informsSmoke } from './informs.js';
await informsSmoke();
process.exit(0);
