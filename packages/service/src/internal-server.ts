import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/** What `/metrics` serves: a prom-client Registry, or anything that renders the same text. */
export interface MetricsSource {
  contentType: string;
  metrics(): Promise<string>;
}

/** What a readiness check reports: whether the process should get traffic, and the body to answer with. */
export interface Readiness {
  ready: boolean;
  /** JSON body of the answer (200 when ready, 503 otherwise); each service keeps its own shape */
  body: unknown;
}

export interface ProbeOptions {
  /** `GET /readyz`; should answer within a few seconds even when a dependency hangs */
  readiness: () => Promise<Readiness>;
  /** `GET /metrics` is served only when given (never on a public port) */
  metrics?: MetricsSource;
}

/**
 * Slow-client limits for a Node HTTP server. Node's defaults (300 s for a request, 60 s for its headers,
 * checked every 30 s) let a client that trickles bytes hold a socket for minutes; a few thousand such
 * clients exhaust file descriptors without sending one complete request.
 */
export interface HttpTimeouts {
  /** whole request headers must arrive within this. @defaultValue 10000 ms */
  headersTimeoutMs?: number;
  /** the whole request (headers and body) must arrive within this. @defaultValue 30000 ms */
  requestTimeoutMs?: number;
}

/**
 * Options for `http.createServer` enforcing `timeouts`. The expiry check runs every second (Node's default
 * is every 30 s, which would let a 10 s limit last 40 s). A WebSocket upgrade is bound by the same header
 * limit until its handshake is answered.
 */
export function httpServerOptions(timeouts: HttpTimeouts = {}): ServerOptions {
  const headersTimeout = timeouts.headersTimeoutMs ?? 10_000;
  const requestTimeout = timeouts.requestTimeoutMs ?? 30_000;
  return {
    headersTimeout: Math.min(headersTimeout, requestTimeout),
    requestTimeout,
    connectionsCheckingInterval: Math.min(1000, headersTimeout),
  };
}

const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
};

/**
 * Answers `GET /healthz` (the process is up), `GET /readyz` and, with `metrics`, `GET /metrics`. Returns
 * false for any other request, so a public app can mount the probes and go on with its own routes.
 */
export function probeHandler(options: ProbeOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      json(res, 200, { status: 'ok' });
      return true;
    }
    if (path === '/readyz') {
      options.readiness().then(
        (r) => json(res, r.ready ? 200 : 503, r.body),
        () => json(res, 503, { status: 'unavailable' }),
      );
      return true;
    }
    if (path === '/metrics' && options.metrics) {
      const registry = options.metrics;
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => json(res, 500, { error: { code: 'internal_error', message: 'could not collect metrics' } }),
      );
      return true;
    }
    return false;
  };
}

export interface InternalServerOptions extends ProbeOptions, HttpTimeouts {
  /** interface to listen on */
  host: string;
  /** 0 picks a free port */
  port: number;
  metrics: MetricsSource;
}

export interface InternalServer {
  port: number;
  /** `http://host:port` */
  url: string;
  close(): Promise<void>;
}

/**
 * A service's internal HTTP server: health, readiness and Prometheus metrics on a port of its own, which
 * the deployment keeps off the public network (metrics name routes, queues and error rates an attacker
 * should not see; scraping should not compete with clients for the API port). Anything else is a JSON 404.
 */
export async function startInternalServer(options: InternalServerOptions): Promise<InternalServer> {
  const handle = probeHandler(options);
  const server: Server = createServer(httpServerOptions(options), (req, res) => {
    if (!handle(req, res)) json(res, 404, { error: { code: 'not_found', message: 'no such route' } });
  });
  // Scrapers and probes open short connections; nothing should keep the process from exiting.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${host}:${port}`,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
