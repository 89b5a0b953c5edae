export { ApiError, sendError, jsonErrorHandler, notFoundHandler } from './errors.js';
