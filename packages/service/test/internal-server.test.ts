import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Counter, createMetricsRegistry } from '@alarmcast/observability';
import { startInternalServer, type InternalServer } from '../src/index.js';

describe('startInternalServer', () => {
  let server: InternalServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves /healthz, /readyz (200 or 503 with the service body), /metrics and a JSON 404', async () => {
    const metrics = createMetricsRegistry('test');
    new Counter({ name: 'things_total', help: 'things', registers: [metrics] }).inc();
    let ready = true;
    server = await startInternalServer({
      host: '127.0.0.1',
      port: 0,
      metrics,
      readiness: async () => ({ ready, body: { status: ready ? 'ready' : 'unavailable' } }),
    });
    expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    ready = false;
    const down = await fetch(`${server.url}/readyz`);
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ status: 'unavailable' });
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/^things_total\{service="test"\} 1$/m);
    const missing = await fetch(`${server.url}/v1/alarms`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: 'not_found', message: 'no such route' } });
  });

  it('cuts off a client that never finishes its request headers', async () => {
    server = await startInternalServer({
      host: '127.0.0.1',
      port: 0,
      metrics: createMetricsRegistry('test'),
      readiness: async () => ({ ready: true, body: {} }),
      headersTimeoutMs: 300,
      requestTimeoutMs: 300,
    });
    const socket = connect(server.port, '127.0.0.1');
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    let answer = '';
    socket.on('data', (b: Buffer) => (answer += b.toString()));
    const started = Date.now();
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
