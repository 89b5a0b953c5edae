#!/usr/bin/env node
// Compiles one workspace's src/**/*.ts to JavaScript, file by file (no bundling), for production:
// `node services/<name>/dist/main.js` runs without tsx, and workspace packages are imported through their
// "default" export condition (dist/), while tests and dev keep the "source" condition (src/).
//
// Why esbuild's per-file transform and not tsc: type checking is the `typecheck` task's job already, and
// tsc cannot emit one package without also emitting every workspace package it imports from source. The
// code is written for it: `verbatimModuleSyntax` and `isolatedModules` make each file compile on its own.
// The layout under dist/ mirrors src/, so paths resolved from `import.meta.url` (migrations, the console's
// page) stay the same distance from the package root.
//
// Usage (from a workspace's package.json): node ../../scripts/compile.mjs [outdir]   (default: dist)
import { readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { build } from 'esbuild';

const outdir = process.argv[2] ?? 'dist';
const srcdir = 'src';

function tsFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

const started = Date.now();
const entryPoints = tsFiles(srcdir);
// A clean output: a source file that was deleted must not live on as stale JavaScript.
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints,
  outdir,
  outbase: srcdir,
  bundle: false,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
});
const where = relative(process.cwd(), outdir) || outdir;
console.log(`compiled ${entryPoints.length} files to ${where}/ in ${Date.now() - started} ms`);
