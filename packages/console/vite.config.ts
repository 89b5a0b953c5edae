import { defineConfig } from 'vite';

// Built at install time into dist/, which alarm-ingest serves under /console/ (relative asset paths). Two
// pages: the alarm list (index.html) and the cluster page for platform admins (cluster.html).
export default defineConfig({
  root: 'web',
  base: './',
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: { main: 'web/index.html', cluster: 'web/cluster.html' } },
  },
});
