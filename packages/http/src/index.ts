export { ApiError, sendError, jsonErrorHandler, notFoundHandler } from './errors.js';
export { RateLimit, rateLimits, type RateLimitOptions, type RateLimitsOptions } from './rate-limit.js';
export { parseTrustProxy, compileTrustProxy, clientIp, type TrustProxy } from './client-ip.js';
export { apiDocsRouter, renderApiDocs, servedRoutes, type ServedRoute } from './api-docs.js';
