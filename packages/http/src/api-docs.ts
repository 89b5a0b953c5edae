import express, { type Express, type Router } from 'express';
import { ROUTES, expressPath } from '@alarmcast/contracts';

type Json = Record<string, unknown>;

/**
 * `GET /openapi.json` (the service's OpenAPI document, generated from packages/contracts `openapi.ts`) and
 * `GET /docs` (the same, rendered as one self-contained HTML page). The page is rendered here, on the
 * server, once: no script, no stylesheet or font from elsewhere (the machines it runs on may have no
 * internet, and a page without scripts cannot be used to run one), so its Content-Security-Policy allows
 * nothing but its own inline style.
 */
export function apiDocsRouter(document: Json): Router {
  const router = express.Router();
  const json = JSON.stringify(document);
  const html = renderApiDocs(document);
  router.get(expressPath(ROUTES.openApiDocument), (_req, res) => {
    res.type('application/json').send(json);
  });
  router.get(expressPath(ROUTES.apiDocsPage), (_req, res) => {
    res
      .set({
        'Content-Security-Policy':
          "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
      })
      .type('text/html')
      .send(html);
  });
  return router;
}

const escape = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A schema as indented JSON, its $refs linked to the schema's section. */
function schemaBlock(schema: unknown): string {
  const text = escape(JSON.stringify(schema, null, 2));
  return `<pre>${text.replace(
    /&#34;#\/components\/schemas\/([A-Za-z0-9]+)&#34;/g,
    (_m, id: string) => `&#34;<a href="#schema-${id}">#/components/schemas/${id}</a>&#34;`,
  )}</pre>`;
}

/** Inline code spans (`x`) of the descriptions, the only markup they use. */
const prose = (s: unknown): string =>
  typeof s === 'string' ? escape(s).replace(/`([^`]+)`/g, '<code>$1</code>') : '';

function renderOperation(path: string, method: string, op: Json): string {
  const id = String(op.operationId);
  const security = (op.security as Json[] | undefined) ?? [];
  const auth = security.length === 0 ? 'none' : security.map((s) => Object.keys(s).join(', ')).join(' or ');
  const params = (op.parameters as Json[] | undefined) ?? [];
  const body = op.requestBody as { description?: string; content: Record<string, Json> } | undefined;
  const responses = Object.entries((op.responses as Record<string, Json>) ?? {});
  return `<section class="op" id="op-${escape(id)}">
<h3><span class="m m-${escape(method)}">${escape(method.toUpperCase())}</span> <code>${escape(path)}</code></h3>
<p>${prose(op.summary)}</p>${op.description ? `<p>${prose(op.description)}</p>` : ''}
<p class="meta">operationId <code>${escape(id)}</code> · credentials: <code>${escape(auth)}</code></p>
${
  params.length === 0
    ? ''
    : `<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th><th>schema</th><th>about</th></tr>${params
        .map(
          (p) =>
            `<tr><td><code>${escape(String(p.name))}</code></td><td>${escape(String(p.in))}</td><td>${p.required ? 'yes' : 'no'}</td><td><code>${escape(JSON.stringify(p.schema))}</code></td><td>${prose(p.description)}</td></tr>`,
        )
        .join('')}</table>`
}
${
  body
    ? `<h4>Request body</h4><p>${prose(body.description)}</p>${Object.entries(body.content)
        .map(([type, c]) => `<p><code>${escape(type)}</code></p>${schemaBlock(c.schema)}`)
        .join('')}`
    : ''
}
<h4>Responses</h4>${responses
    .map(([status, r]) => {
      const content = Object.entries((r.content as Record<string, Json> | undefined) ?? {});
      const headers = Object.keys((r.headers as Json | undefined) ?? {});
      return `<div class="resp"><p><b class="s s${escape(status[0] ?? '')}">${escape(status)}</b> ${prose(r.description)}${
        headers.length ? ` · headers: ${headers.map((h) => `<code>${escape(h)}</code>`).join(', ')}` : ''
      }</p>${content
        .map(
          ([type, c]) =>
            `<details><summary><code>${escape(type)}</code></summary>${schemaBlock(c.schema)}</details>`,
        )
        .join('')}</div>`;
    })
    .join('')}
</section>`;
}

/** The whole document as one HTML page: operations by tag, then the named schemas. */
export function renderApiDocs(document: Json): string {
  const info = document.info as Json;
  const paths = document.paths as Record<string, Record<string, Json>>;
  const tags = (document.tags as { name: string; description?: string }[] | undefined) ?? [];
  const schemas = ((document.components as Json | undefined)?.schemas as Record<string, unknown>) ?? {};
  const ops = Object.entries(paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ path, method, op })),
  );
  const byTag = tags.map((t) => ({
    ...t,
    ops: ops.filter((o) => ((o.op.tags as string[] | undefined) ?? [])[0] === t.name),
  }));
  const toc = byTag
    .map(
      (t) =>
        `<li>${escape(t.name)}<ul>${t.ops
          .map(
            (o) =>
              `<li><a href="#op-${escape(String(o.op.operationId))}">${escape(o.method.toUpperCase())} ${escape(o.path)}</a></li>`,
          )
          .join('')}</ul></li>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(String(info.title))} API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;display:flex;color:#1d2330}
nav{width:300px;flex:none;height:100vh;position:sticky;top:0;overflow:auto;background:#f4f5f8;padding:1em;box-sizing:border-box;font-size:13px}
nav ul{padding-left:1em}main{padding:1em 2em;max-width:1000px;min-width:0}
pre{background:#f6f8fa;padding:.6em;overflow:auto;font-size:12px}code{font-size:90%}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #dde;padding:.2em .5em;text-align:left;vertical-align:top}
.op{border-top:1px solid #dde;padding-top:.5em;margin-top:1.5em}.meta{color:#667;font-size:13px}
.m{display:inline-block;min-width:4em;text-align:center;color:#fff;border-radius:3px;padding:0 .3em;font-size:13px}
.m-get{background:#2b7a4b}.m-post{background:#1f5fa8}.m-put{background:#8a5a00}.m-patch{background:#6b3fa0}.m-options{background:#777}
.s{font-family:monospace}.s2{color:#2b7a4b}.s4{color:#a8551f}.s5{color:#b3261e}.s1,.s3{color:#555}
</style></head><body>
<nav><b>${escape(String(info.title))}</b> ${escape(String(info.version))}<ul>${toc}</ul><a href="#schemas">Schemas</a> · <a href="openapi.json">openapi.json</a></nav>
<main><h1>${escape(String(info.title))}</h1><p>${prose(info.description)}</p>
<p class="meta">OpenAPI ${escape(String(document.openapi))}, generated from the zod contracts; the document itself: <a href="openapi.json"><code>/openapi.json</code></a></p>
${byTag
  .map(
    (t) =>
      `<h2 id="tag-${escape(t.name)}">${escape(t.name)}</h2><p>${prose(t.description)}</p>${t.ops
        .map((o) => renderOperation(o.path, o.method, o.op))
        .join('\n')}`,
  )
  .join('\n')}
<h2 id="schemas">Schemas</h2>
${Object.entries(schemas)
  .map(([id, s]) => `<section id="schema-${escape(id)}"><h3>${escape(id)}</h3>${schemaBlock(s)}</section>`)
  .join('\n')}
</main></body></html>
`;
}

/** A route an Express app serves: its method and path in Express syntax. */
export interface ServedRoute {
  method: string;
  path: string;
}

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  slash?: boolean;
}

/**
 * Every route an Express app has registered (`app.get`, `router.post`, ...), including those of routers
 * mounted with `app.use(router)`, for the check that each is declared in the OpenAPI document. Middleware
 * that answers requests itself (the probes, static files) is not a route and is declared by hand in ROUTES.
 * Routers must be mounted at the root (their routes carry full paths), as all of ours are.
 */
export function servedRoutes(app: Express): ServedRoute[] {
  const out: ServedRoute[] = [];
  const walk = (stack: Layer[]): void => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const path of paths)
          for (const [method, on] of Object.entries(layer.route.methods))
            if (on && method !== '_all') out.push({ method, path });
      } else if (layer.handle?.stack) {
        if (layer.slash === false) throw new Error('servedRoutes: a router mounted below / cannot be listed');
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return out;
}
