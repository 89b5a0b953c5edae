import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import type { HorizontalPodAutoscaler } from 'kubernetes-types/autoscaling/v2.js';
import type { Kustomization, ScaledObject } from '../src/keda-types.js';
import { readCatalogue } from '../src/metric-catalogue.js';

const K8S = fileURLToPath(new URL('../../../infra/k8s/', import.meta.url));
const E2E = fileURLToPath(new URL('../', import.meta.url));
const TSC = fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url));

/** The TypeScript type each kind of manifest is checked against. */
const TYPES: Record<string, { module: string; type: string }> = {
  'apps/v1 Deployment': { module: 'kubernetes-types/apps/v1.js', type: 'Deployment' },
  'v1 Service': { module: 'kubernetes-types/core/v1.js', type: 'Service' },
  'v1 Namespace': { module: 'kubernetes-types/core/v1.js', type: 'Namespace' },
  'v1 Secret': { module: 'kubernetes-types/core/v1.js', type: 'Secret' },
  'batch/v1 Job': { module: 'kubernetes-types/batch/v1.js', type: 'Job' },
  'autoscaling/v2 HorizontalPodAutoscaler': {
    module: 'kubernetes-types/autoscaling/v2.js',
    type: 'HorizontalPodAutoscaler',
  },
  'policy/v1 PodDisruptionBudget': { module: 'kubernetes-types/policy/v1.js', type: 'PodDisruptionBudget' },
  'networking.k8s.io/v1 Ingress': { module: 'kubernetes-types/networking/v1.js', type: 'Ingress' },
  'keda.sh/v1alpha1 ScaledObject': { module: `${E2E}src/keda-types.js`, type: 'ScaledObject' },
  'kustomize.config.k8s.io/v1beta1 Kustomization': {
    module: `${E2E}src/keda-types.js`,
    type: 'Kustomization',
  },
};

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  [k: string]: unknown;
}

const manifests: Manifest[] = readdirSync(K8S)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .flatMap((file) =>
    parseAllDocuments(readFileSync(join(K8S, file), 'utf8')).map((doc) => {
      expect(doc.errors, file).toEqual([]);
      return { ...(doc.toJS() as Omit<Manifest, 'file'>), file } as Manifest;
    }),
  );
const ofKind = <T>(kind: string): (T & Manifest)[] =>
  manifests.filter((m) => m.kind === kind) as (T & Manifest)[];

/**
 * infra/k8s against the Kubernetes API's own types. kubeconform is neither in Debian 12's archive nor on npm,
 * so the manifests are written out as TypeScript object literals `satisfies` their kind's type from
 * kubernetes-types (generated from Kubernetes 1.30's OpenAPI) and type-checked by tsc, which refuses any field
 * the API does not have (excess property checks), a wrong type or a missing required field.
 */
describe('Kubernetes manifests (infra/k8s)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'alarmcast-k8s-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('type-check against the Kubernetes API types (kubernetes-types 1.30) and KEDA v1alpha1', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(14);
    const imports = new Map<string, Set<string>>();
    const lines: string[] = [];
    manifests.forEach((m, i) => {
      const target = TYPES[`${m.apiVersion} ${m.kind}`];
      expect(target, `${m.file}: no schema for ${m.apiVersion} ${m.kind}`).toBeDefined();
      const names = imports.get(target!.module) ?? new Set<string>();
      names.add(target!.type);
      imports.set(target!.module, names);
      const { file, ...body } = m;
      lines.push(`// ${file} ${m.kind} ${m.metadata?.name}`);
      lines.push(`export const m${i} = ${JSON.stringify(body, null, 2)} satisfies ${target!.type};`);
    });
    const source = [
      ...[...imports].map(([module, names]) => `import type { ${[...names].join(', ')} } from '${module}';`),
      ...lines,
    ].join('\n');
    writeFileSync(join(dir, 'manifests.ts'), source);
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'esnext',
          moduleResolution: 'bundler',
          target: 'es2022',
          skipLibCheck: true,
          baseUrl: E2E,
          paths: { 'kubernetes-types/*': [`${E2E}node_modules/kubernetes-types/*`] },
          types: [],
        },
        files: ['manifests.ts'],
      }),
    );
    const tsc = spawnSync(process.execPath, [TSC, '-p', join(dir, 'tsconfig.json')], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  });

  it('apply every file but the examples, and only files that exist', () => {
    const [kustomization] = ofKind<Kustomization>('Kustomization');
    const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...kustomization!.resources!].sort()).toEqual(
      files.filter((f) => !f.includes('.example.')).sort(),
    );
  });

  it('give every Deployment a PodDisruptionBudget, resource requests and an autoscaler', () => {
    const deployments = ofKind<Deployment>('Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual([
      'alarm-ingest',
      'recipient-resolver',
      'ws-edge',
    ]);
    const pdbs = ofKind<{ spec: { selector: { matchLabels: Record<string, string> } } }>(
      'PodDisruptionBudget',
    );
    const scaled = [
      ...ofKind<HorizontalPodAutoscaler>('HorizontalPodAutoscaler').map((h) => h.spec!.scaleTargetRef.name),
      ...ofKind<ScaledObject>('ScaledObject').map((s) => s.spec.scaleTargetRef.name),
    ];
    for (const d of deployments) {
      const labels = d.spec!.template.metadata!.labels!;
      expect(
        pdbs.some((p) => Object.entries(p.spec.selector.matchLabels).every(([k, v]) => labels[k] === v)),
        `${d.metadata.name} has no PDB`,
      ).toBe(true);
      expect(
        scaled.filter((n) => n === d.metadata.name),
        `${d.metadata.name}: one autoscaler`,
      ).toHaveLength(1);
      for (const c of d.spec!.template.spec!.containers) {
        expect(c.resources?.requests?.cpu, `${d.metadata.name} cpu request`).toBeDefined();
        expect(c.resources?.requests?.memory, `${d.metadata.name} memory request`).toBeDefined();
      }
    }
  });

  it('drain the edge with a preStop and a spread that fit in its grace period', () => {
    const edge = ofKind<Deployment>('Deployment').find((d) => d.metadata.name === 'ws-edge')!;
    const pod = edge.spec!.template.spec!;
    const container = pod.containers[0]!;
    const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
    expect(preStop[0]).toBe('sleep');
    const spread = Number(container.env!.find((e) => e.name === 'EDGE_DRAIN_SPREAD_S')?.value);
    expect(spread).toBeGreaterThan(0);
    // preStop sleep + spread + 5 s for the last close handshakes, inside the grace period.
    expect(Number(preStop[1]) + spread + 5).toBeLessThan(pod.terminationGracePeriodSeconds!);
  });

  it('scale on metrics the services serve (the metric catalogue)', () => {
    const names = new Set(readCatalogue().map((e) => e.name));
    const hpaMetrics = ofKind<HorizontalPodAutoscaler>('HorizontalPodAutoscaler').flatMap((h) =>
      (h.spec!.metrics ?? []).flatMap((m) => (m.type === 'Pods' ? [m.pods!.metric.name] : [])),
    );
    expect(hpaMetrics).toEqual(['ws_edge_connections']);
    const kedaQueries = ofKind<ScaledObject>('ScaledObject').flatMap((s) =>
      s.spec.triggers.map((t) => {
        expect(t.type).toBe('prometheus');
        return t.metadata.query!;
      }),
    );
    expect(kedaQueries.length).toBeGreaterThanOrEqual(2);
    // Every identifier of a query outside its label matchers that is not a PromQL function or keyword.
    const promql = new Set(['max', 'min', 'sum', 'avg', 'by', 'without', 'rate', 'increase', 'irate']);
    const used = kedaQueries.flatMap((q) =>
      (q.replace(/\{[^}]*\}/g, '').match(/[a-z_][a-z0-9_]*/g) ?? []).filter((w) => !promql.has(w)),
    );
    expect(used.length).toBeGreaterThanOrEqual(2);
    for (const name of [...hpaMetrics, ...used]) expect(names, name).toContain(name);
  });
});
