import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';

/** Which hops in front of a service may say who the client is (Express' `trust proxy`). */
export type TrustProxy = false | number | string[];

/**
 * `TRUST_PROXY` as documented: unset, empty, `false` or `0` trust nobody (the client IP is the TCP peer);
 * a positive integer N trusts the N nearest hops (`X-Forwarded-For`'s last N entries were written by
 * proxies of ours); otherwise a comma-separated list of proxy addresses, CIDR ranges or the names
 * `loopback`, `linklocal`, `uniquelocal`. `true` (trust every hop) is refused: any client could then pick
 * its own IP and walk around every per-IP limit. Throws on anything else.
 */
export function parseTrustProxy(value: string | undefined): TrustProxy {
  const v = (value ?? '').trim();
  if (v === '' || v === 'false' || v === '0') return false;
  if (/^\d{1,2}$/.test(v)) return Number(v);
  if (v === 'true')
    throw new Error('true would let any client choose its IP; name the proxies or a hop count');
  const list = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  proxyaddr.compile(list); // throws "invalid IP address" for a bad entry
  return list;
}

/** The trust function of a TRUST_PROXY setting, for requests Express does not see (WebSocket upgrades). */
export function compileTrustProxy(trust: TrustProxy): (addr: string, i: number) => boolean {
  if (trust === false) return () => false;
  if (typeof trust === 'number') return (_addr, i) => i < trust;
  return proxyaddr.compile(trust);
}

/** The client's IP address under a trust function: the TCP peer, or what trusted proxies said it was. */
export function clientIp(req: IncomingMessage, trust: (addr: string, i: number) => boolean): string {
  return proxyaddr(req, trust);
}
