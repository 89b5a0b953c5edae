import { makeGlobalSetup } from '@alarmcast/testing';
import { applyMigrations } from '@alarmcast/db';

export default makeGlobalSetup(async (url) => {
  await applyMigrations(url);
});
