import { connect as natsConnect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { StreamfnError } from "../api/errors.js";
import { natsConnectError } from "./nats-errors.js";

export interface ClusterLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ConnectOptions {
  /** One URL or several, comma-separated (`nats://127.0.0.1:4222`). */
  servers: string | string[];
  token?: string;
  user?: string;
  pass?: string;
  /** A name the server shows for this connection (`streamfn-worker-<host>`). */
  name?: string;
  /** How long the first connect may take before it fails. */
  timeoutMs?: number;
  logger?: ClusterLogger;
}

const kSilent: ClusterLogger = { info() {}, warn() {} };

const kReconnectListeners = new WeakMap<NatsConnection, Set<() => void>>();

/**
 * Calls `cb` after every reconnect of `nc` (a connection from connectCluster); returns the
 * unsubscribe. Core-NATS messages published while a process was away are gone for it: what
 * it follows live must be read back from the store, and what it reports on change only must
 * be reported again.
 */
export function onReconnect(nc: NatsConnection, cb: () => void): () => void {
  let set = kReconnectListeners.get(nc);
  if (!set) {
    set = new Set();
    kReconnectListeners.set(nc, set);
  }
  set.add(cb);
  return () => set.delete(cb);
}

/**
 * Connects to NATS. The first connect fails fast with a typed error naming the server (a wrong
 * URL must not hang a starting process); once connected, the client reconnects forever and
 * every disconnect and reconnect is logged, because a worker or gateway that gives up on its
 * cluster is worse than one that waits for it.
 */
export async function connectCluster(options: ConnectOptions): Promise<NatsConnection> {
  const servers = typeof options.servers === "string" ? options.servers.split(",").map((s) => s.trim()).filter(Boolean) : options.servers;
  if (servers.length === 0) throw new StreamfnError("INVALID_OPTIONS", "no NATS server URL given");
  const shown = servers.join(",");
  const logger = options.logger ?? kSilent;
  let nc: NatsConnection;
  try {
    nc = await natsConnect({
      servers,
      name: options.name,
      token: options.token,
      user: options.user,
      pass: options.pass,
      timeout: options.timeoutMs ?? 5_000,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      waitOnFirstConnect: false,
      // The client otherwise builds two Error objects (stack traces) per request to give a
      // later timeout a stack: a third of a gateway's and a worker's CPU per event. Our
      // errors name the subject and the stream themselves.
      noAsyncTraces: true,
    });
  } catch (err) {
    throw natsConnectError(err, shown, { auth: "CLUSTER_AUTH_FAILED", unreachable: "CLUSTER_UNREACHABLE" });
  }
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") logger.warn({ server: s.server }, "disconnected from NATS; reconnecting");
      else if (s.type === "reconnect") {
        logger.info({ server: s.server }, "reconnected to NATS");
        for (const cb of [...(kReconnectListeners.get(nc) ?? [])]) cb();
      }
      else if (s.type === "error") logger.warn({ err: s.error.message }, "NATS connection error");
      else if (s.type === "slowConsumer") logger.warn({ subject: s.sub.getSubject(), pending: s.pending }, "NATS slow consumer");
    }
  })();
  return nc;
}
