import { fileURLToPath } from 'node:url';

/** The built console (index.html and assets), produced by `vite build` at install. */
export const CONSOLE_DIST_DIR = fileURLToPath(new URL('../dist', import.meta.url));

/** What the page asks its server for at /console/config.json. */
export interface ConsoleConfig {
  /** Pusher app key */
  key: string;
  wsHost: string;
  wsPort: number;
  forceTLS: boolean;
  /** absolute URL of the edge's /broadcasting/auth */
  authEndpoint: string;
  /** base URL of the alarm API (GET /v1/alarms, POST /v1/alarms/{id}/ack); '' for the page's own origin */
  apiBase: string;
}
