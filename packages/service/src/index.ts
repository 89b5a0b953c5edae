export {
  startInternalServer,
  probeHandler,
  httpServerOptions,
  type InternalServer,
  type InternalServerOptions,
  type ProbeOptions,
  type Readiness,
  type HttpTimeouts,
} from './internal-server.js';
