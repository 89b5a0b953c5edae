import { defineConfig } from 'vite';

// Built at install time into dist/, which alarm-ingest serves under /console/ (relative asset paths).
export default defineConfig({
  root: 'web',
  base: './',
  build: { outDir: '../dist', emptyOutDir: true, target: 'es2022' },
});
