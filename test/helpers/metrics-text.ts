/** One scrape of /metrics, parsed: sample values by name and labels. */
export interface Scrape {
  contentType: string;
  text: string;
  /** The sample's value, or undefined when there is no such series. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Every series of `name`, with its labels. */
  series(name: string): { labels: Record<string, string>; value: number }[];
  /** The metric's `# TYPE`. */
  type(name: string): string | undefined;
}

const kSample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;
const kLabel = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text format (0.0.4): comments, `name{labels} value` lines. */
export function parseMetrics(text: string, contentType = ""): Scrape {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      types.set(name!, type!);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = kSample.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(kLabel)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    const raw = m[3]!;
    samples.push({ name: m[1]!, labels, value: raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw) });
  }
  const matches = (have: Record<string, string>, want: Record<string, string>): boolean =>
    Object.keys(have).length === Object.keys(want).length && Object.entries(want).every(([k, v]) => have[k] === v);
  return {
    contentType,
    text,
    value: (name, labels = {}) => samples.find((s) => s.name === name && matches(s.labels, labels))?.value,
    series: (name) => samples.filter((s) => s.name === name).map(({ labels, value }) => ({ labels, value })),
    type: (name) => types.get(name),
  };
}

export async function scrape(baseUrl: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await fetch(`${baseUrl}/metrics`, { headers });
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${await res.text()}`);
  return parseMetrics(await res.text(), res.headers.get("content-type") ?? "");
}
