import { makeGlobalSetup } from '@alarmcast/testing';

// Only Redis is used here; the template database stays empty.
export default makeGlobalSetup(async () => undefined);
