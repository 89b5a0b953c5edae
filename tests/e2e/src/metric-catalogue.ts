import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
/** The part of a prom-client Registry read here (the services' registries). */
interface MetricRegistry {
  getMetricsAsArray(): object[];
}

/** docs/METRICS.md, the documented metric catalogue. */
export const METRICS_DOC = fileURLToPath(new URL('../../../docs/METRICS.md', import.meta.url));

export interface CatalogueEntry {
  service: string;
  name: string;
  type: string;
  /** sorted, without the `service` label every metric carries */
  labels: string[];
  meaning: string;
}

/** prom-client's default process metrics, listed once in the catalogue rather than per metric. */
export const isDefaultMetric = (name: string): boolean => /^(process_|nodejs_)/.test(name);

/**
 * The catalogue's rows: under each `## <service>` heading, a table `| name | type | labels | meaning |`
 * whose name and labels are in backticks (`-` for no labels).
 */
export function readCatalogue(path = METRICS_DOC): CatalogueEntry[] {
  const entries: CatalogueEntry[] = [];
  let service: string | null = null;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const heading = /^## `([a-z-]+)`/.exec(line);
    if (heading) {
      service = heading[1]!;
      continue;
    }
    if (line.startsWith('## ')) service = null;
    if (service === null || !line.startsWith('| `')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const [name, type, labels, meaning] = cells;
    entries.push({
      service,
      name: name!.replaceAll('`', ''),
      type: type!,
      labels:
        labels === '-'
          ? []
          : labels!
              .split(',')
              .map((l) => l.trim().replaceAll('`', ''))
              .sort(),
      meaning: meaning ?? '',
    });
  }
  return entries;
}

/** What a registry actually registers (default metrics left out), in the catalogue's shape. */
export async function registeredMetrics(
  service: string,
  registry: MetricRegistry,
): Promise<Omit<CatalogueEntry, 'meaning'>[]> {
  const out: Omit<CatalogueEntry, 'meaning'>[] = [];
  for (const metric of registry.getMetricsAsArray()) {
    const { name, labelNames, get } = metric as {
      name: string;
      labelNames: string[];
      get: () => Promise<{ type: unknown }>;
    };
    if (isDefaultMetric(name)) continue;
    const { type } = await get.call(metric);
    out.push({ service, name, type: String(type), labels: [...labelNames].sort() });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
