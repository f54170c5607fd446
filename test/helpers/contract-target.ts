// The deployment the contract suite runs against. Tests see it only as a URL plus what a user
// can observe over the wire (the stream status, status and control routes, output replay), so
// the same test runs against embedded mode and, later, against cluster mode.
//
// STREAMFN_CONTRACT_TARGET picks it: `embedded` (default) starts one in-process server;
// `cluster` starts the processes of cluster mode (message broker, worker, gateway).
// Every suite runs once per sandbox (`forEachSandbox`): the thread, process and inline tiers
// keep the same contract (the inline tier skips what needs isolation, each skip with its
// reason). STREAMFN_CONTRACT_SANDBOX=thread, =process or =inline runs only one.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ServerOptions, StreamfnServer } from "../../src/server/server.js";
import { call, SseClient } from "./http-client.js";
import { eventually, startTestServer } from "./server.js";
import type { Rec } from "./ws-client.js";

export type ContractTargetKind = "embedded" | "cluster";
export type ContractSandbox = "thread" | "process" | "inline";

/** What a contract test may ask of a deployment: server-wide settings every mode honours. */
export type ContractOptions = Pick<
  Partial<ServerOptions>,
  "endedRetentionMs" | "outputRetention" | "defaults" | "overrides" | "graceMs" | "pingIntervalMs" | "token"
> & {
  /** The sandbox every function runs in (a default under the functions' own options). Default thread. */
  sandbox?: ContractSandbox;
};

/** GET /v1/functions/:fn/streams/:id of a live stream (state waiting or running) or an ended one (state ended). */
export interface StreamStatusDoc {
  function: string;
  streamId: string;
  state: "waiting" | "running" | "ended";
  version: string | null;
  events: number;
  outputs: number;
  duplicates: number | null;
  /** Live only. */
  inputEnded?: string | null;
  instance?: number | null;
  lastSeq?: number;
  queued?: number;
  inflight?: number;
  heldOutputs?: number;
  subscribers?: number;
  /** Ended only. */
  status?: "completed" | "failed";
  reason?: string;
  error?: { code: string; message: string };
}

/** A stream that ended: its end record (as subscribers get it) and its replayed outputs' data. */
export interface ClosedStream {
  record: Rec;
  outputs: unknown[];
}

export interface ContractTarget {
  readonly kind: ContractTargetKind;
  readonly sandbox: ContractSandbox;
  /** http://host:port of the gateway. */
  readonly url: string;
  /** The directory the functions are served from (readable by either sandbox). */
  readonly functionsDir: string;
  /** ws://host:port of the gateway. */
  readonly wsUrl: string;
  /** The stream's status document, or undefined when the deployment does not know the stream (404). */
  stream(fn: string, id: string): Promise<StreamStatusDoc | undefined>;
  /** GET /v1/status. */
  status(): Promise<TargetStatus>;
  /** The current version's instances and cold starts of a function, from GET /v1/status. */
  current(fn: string): Promise<{ version: string; coldStarts: number; instances: { id: number; state: string }[] }>;
  /** Waits for the stream to end, then replays its outputs (GET …/outputs): what a late subscriber sees. */
  closed(fn: string, id: string, timeoutMs?: number): Promise<ClosedStream>;
  /**
   * The in-process server when the target is embedded, else undefined: for the few checks
   * that can only be made from inside the process (they are skipped on other targets).
   */
  readonly embedded: StreamfnServer | undefined;
  close(): Promise<void>;
}

export interface TargetStatus {
  liveStreams: number;
  functions: {
    name: string;
    versions: { version: string; role: string; coldStarts: number; instances: { id: number; state: string }[] }[];
  }[];
}

export function contractTargetKind(): ContractTargetKind {
  const kind = process.env.STREAMFN_CONTRACT_TARGET ?? "embedded";
  if (kind !== "embedded" && kind !== "cluster") {
    throw new Error(`STREAMFN_CONTRACT_TARGET must be embedded or cluster, got ${JSON.stringify(kind)}`);
  }
  return kind;
}

/** The sandboxes the contract runs against: all three, unless STREAMFN_CONTRACT_SANDBOX names one. */
export function contractSandboxes(): ContractSandbox[] {
  const only = process.env.STREAMFN_CONTRACT_SANDBOX;
  if (only === undefined || only === "" || only === "all") return ["thread", "process", "inline"];
  if (only !== "thread" && only !== "process" && only !== "inline") {
    throw new Error(`STREAMFN_CONTRACT_SANDBOX must be thread, process, inline or all, got ${JSON.stringify(only)}`);
  }
  return [only];
}

/** Declares a suite once per sandbox: `forEachSandbox((sandbox) => describe(...))`. */
export function forEachSandbox(suite: (sandbox: ContractSandbox) => void): void {
  for (const sandbox of contractSandboxes()) suite(sandbox);
}

/** Skip option for a test that one sandbox cannot pass by design, with the reason. */
export function onlyIn(sandbox: ContractSandbox, current: ContractSandbox, reason: string): { skip: string | false } {
  return { skip: current === sandbox ? false : `${current} sandbox: ${reason}` };
}

/**
 * Skip option for a test of what only an isolated sandbox can do (recycle a blocked or
 * exhausted instance): the inline tier runs on the server's own thread and heap, by design.
 */
export function isolatedOnly(current: ContractSandbox, reason: string): { skip: string | false } {
  return { skip: current === "inline" ? `inline tier: ${reason}` : false };
}

/** Skip option for a test that needs the in-process server: `it(name, inProcessOnly(), fn)`. */
export function inProcessOnly(): { skip: string | false } {
  return { skip: contractTargetKind() === "embedded" ? false : "looks inside the server process" };
}

/**
 * Skip option for a test that cluster mode does not pass yet, with the reason: the embedded
 * run is unchanged. `it(name, notOnCluster("why"), fn)`.
 */
export function notOnCluster(reason: string): { skip: string | false } {
  return { skip: contractTargetKind() === "cluster" ? `cluster mode: ${reason}` : false };
}

/**
 * Starts a deployment serving the given function sources (file name → TypeScript source)
 * and answers once it takes streams.
 */
export async function startContractTarget(functions: Record<string, string>, contract: ContractOptions = {}): Promise<ContractTarget> {
  const kind = contractTargetKind();
  const { sandbox = "thread", ...rest } = contract;
  const options: ContractOptions = { ...rest, defaults: { sandbox, ...rest.defaults } };
  if (kind === "cluster") return startClusterTarget(functions, options, sandbox);
  const t = await startTestServer(functions, options);
  return observeOver(kind, sandbox, t.dir, t.url, t.server, () => t.close(), options.token);
}

/** nats-server, one `streamfn worker` and one `streamfn gateway` process (the real CLI) serving the functions. */
async function startClusterTarget(functions: Record<string, string>, options: ContractOptions, sandbox: ContractSandbox): Promise<ContractTarget> {
  const { TestCluster } = await import("./cluster-procs.js");
  const cluster = await TestCluster.start(functions, "contract");
  try {
    const config = join(cluster.dir, ".streamfn-contract.json");
    writeFileSync(config, JSON.stringify({ defaults: options.defaults ?? {}, functions: options.overrides ?? {} }));
    await cluster.worker("contract-worker", 2_000, ["-c", config]);
    const extra: string[] = [];
    if (options.token) extra.push("--token", options.token);
    if (options.outputRetention !== undefined) extra.push("--output-retention", String(options.outputRetention));
    if (options.endedRetentionMs !== undefined) extra.push("--ended-retention-ms", String(options.endedRetentionMs));
    if (options.pingIntervalMs !== undefined) extra.push("--ping-interval-ms", String(options.pingIntervalMs));
    const gw = await cluster.gateway(extra);
    return observeOver("cluster", sandbox, cluster.dir, gw.url, undefined, () => cluster.close(), options.token);
  } catch (err) {
    await cluster.close();
    throw err;
  }
}

function observeOver(
  kind: ContractTargetKind,
  sandbox: ContractSandbox,
  functionsDir: string,
  url: string,
  embedded: StreamfnServer | undefined,
  close: () => Promise<void>,
  token: string | undefined,
): ContractTarget {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const streamUrl = (fn: string, id: string): string =>
    `${url}/v1/functions/${encodeURIComponent(fn)}/streams/${encodeURIComponent(id)}`;
  const target: ContractTarget = {
    kind,
    sandbox,
    functionsDir,
    url,
    wsUrl: url.replace(/^http/, "ws"),
    embedded,
    close,
    async stream(fn, id) {
      const r = await call(streamUrl(fn, id), { headers });
      if (r.status === 404) return undefined;
      if (r.status !== 200) throw new Error(`GET stream status ${fn}/${id}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body as unknown as StreamStatusDoc;
    },
    async status() {
      const r = await call(`${url}/v1/status`, { headers });
      if (r.status !== 200) throw new Error(`GET /v1/status: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body as unknown as TargetStatus;
    },
    async current(fn) {
      const f = (await target.status()).functions.find((x) => x.name === fn);
      const v = f?.versions.find((x) => x.role === "current");
      if (!v) throw new Error(`no current version of ${fn} in /v1/status`);
      return v;
    },
    async closed(fn, id, timeoutMs = 5_000) {
      await eventually(async () => (await target.stream(fn, id))?.state === "ended", timeoutMs, `${fn}/${id} to close`);
      const sub = new SseClient(`${streamUrl(fn, id)}/outputs`, headers);
      try {
        const record = await sub.waitEnd(timeoutMs);
        return { record, outputs: sub.outputs().map((o) => o.data) };
      } finally {
        sub.close();
      }
    },
  };
  return target;
}
