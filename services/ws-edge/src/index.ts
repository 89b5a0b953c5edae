export { startEdge, type EdgeOptions, type EdgeServer } from './server.js';
export { parseEdgeConfig, ConfigError, DEV_DEFAULTS, type EdgeConfig } from './config.js';
export { PUSHER_CODES, CLOSE_REASONS, type PusherCode } from './close-codes.js';
export { CHANNEL_AUTH_PATH } from './channel-auth.js';
