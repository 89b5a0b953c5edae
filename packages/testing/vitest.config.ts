import { packageTestConfig } from '../../vitest.shared.js';

// Its one test starts its own Redis Cluster: no shared Postgres/Redis needed.
export default packageTestConfig(import.meta.dirname, { services: false });
