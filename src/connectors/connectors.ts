import type { StreamSource } from "../api/sources.js";
import { sourceBroker, validateSources } from "../api/sources.js";
import type { StreamTable } from "../router/stream-table.js";
import type { BrokerLink, LinkStatus } from "./link.js";
import type { ConnectorLogger } from "./mqtt-link.js";
import { SourceBinding } from "./source-binding.js";
import type { SourceCounters } from "./source-binding.js";

export interface ConnectorOptions {
  /** `mqtt://[user:pass@]host:1883`. */
  mqtt?: string;
  mqttUsername?: string;
  mqttPassword?: string;
  /** `nats://[user:pass@|token@]host:4222`, several comma-separated. */
  nats?: string;
  /** Per function, the sources that replace its own `sources`. */
  sources?: Record<string, StreamSource[]>;
  /** NATS messages held while their streams are full, before more are dropped (counted). Default 4096. */
  natsQueueLimit?: number;
  /** How long a broker's first connect may take at start. Default 5 000. */
  connectTimeoutMs?: number;
}

/** One source in /v1/status. */
export interface SourceStatus extends SourceCounters {
  function: string;
  broker: "mqtt" | "nats";
  topic: string;
  /** `function`: its `sources`; `config`: the server's configuration. */
  from: "function" | "config";
  /** Connected to its broker and subscribed. */
  connected: boolean;
  liveStreams: number;
  error: string | null;
}

export interface ConnectorsStatus {
  brokers: LinkStatus[];
  sources: SourceStatus[];
}

/** What the connectors read about the served functions. */
export interface SourceCatalog {
  functions(): Iterable<{ name: string; current: unknown; sources: readonly StreamSource[] }>;
}

/**
 * The options with every source checked and its defaults filled in, whoever built them (the
 * config file, a test, an embedder). Throws INVALID_OPTIONS naming the function and entry.
 */
export function normalizeConnectorOptions(options: ConnectorOptions): ConnectorOptions {
  if (!options.sources) return options;
  const sources: Record<string, StreamSource[]> = {};
  for (const [fn, list] of Object.entries(options.sources)) sources[fn] = validateSources(list, `sources for ${fn}`);
  return { ...options, sources };
}

/** How often the bound sources are compared with the served functions (deploys, removals, edits). */
const kSyncMs = 500;

/**
 * The broker connections and the sources bound over them. Bindings follow the served
 * functions: a deploy that adds, changes or drops `sources` subscribes or unsubscribes within
 * kSyncMs (polled: deploys come from the watcher, the control API and start-up alike).
 */
export class Connectors {
  readonly #table: StreamTable;
  readonly #catalog: SourceCatalog;
  readonly #options: ConnectorOptions;
  readonly #logger: ConnectorLogger;
  readonly #links: BrokerLink[] = [];
  #mqtt: BrokerLink | undefined;
  #nats: BrokerLink | undefined;
  readonly #bindings = new Map<string, { binding: SourceBinding; from: SourceStatus["from"] }>();
  #timer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(table: StreamTable, catalog: SourceCatalog, options: ConnectorOptions, logger: ConnectorLogger) {
    this.#table = table;
    this.#catalog = catalog;
    this.#options = normalizeConnectorOptions(options);
    this.#logger = logger;
  }

  /** Whether any broker is configured (without one, functions' sources are only reported). */
  get enabled(): boolean {
    return this.#options.mqtt !== undefined || this.#options.nats !== undefined;
  }

  /** Connects to the configured brokers (a clear typed error when one cannot be reached) and binds the sources. */
  async start(): Promise<void> {
    const timeout = this.#options.connectTimeoutMs;
    try {
      // The broker clients load only when a broker is configured: together they are ~100
      // modules, which a server without connectors would load at every start.
      if (this.#options.mqtt !== undefined) {
        const { MqttLink } = await import("./mqtt-link.js");
        this.#mqtt = await MqttLink.connect({
          url: this.#options.mqtt,
          username: this.#options.mqttUsername,
          password: this.#options.mqttPassword,
          connectTimeoutMs: timeout,
          logger: this.#logger,
        });
        this.#links.push(this.#mqtt);
        this.#logger.info({ broker: this.#mqtt.url }, "connected to MQTT broker");
      }
      if (this.#options.nats !== undefined) {
        const { NatsLink } = await import("./nats-link.js");
        this.#nats = await NatsLink.connect({ url: this.#options.nats, connectTimeoutMs: timeout, queueLimit: this.#options.natsQueueLimit, logger: this.#logger });
        this.#links.push(this.#nats);
        this.#logger.info({ broker: this.#nats.url }, "connected to NATS server");
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    await this.sync();
    // Without a broker nothing is subscribed: status() refreshes the list of (unbound) sources
    // when asked, and an idle server keeps no timer for it.
    if (!this.enabled) return;
    this.#timer = setInterval(() => void this.sync(), kSyncMs);
    this.#timer.unref();
  }

  /** Brings the bindings in line with the served functions. Serialized: one sync at a time. */
  sync(): Promise<void> {
    this.#syncing = this.#syncing.then(() => this.#sync()).catch((err: unknown) => {
      this.#logger.error({ err: (err as Error).message }, "binding sources failed");
    });
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    if (this.#closed) return;
    const wanted = new Map<string, { fn: string; source: StreamSource; from: SourceStatus["from"] }>();
    for (const fn of this.#catalog.functions()) {
      if (!fn.current) continue;
      const configured = this.#options.sources?.[fn.name];
      const list = configured ?? fn.sources;
      const from = configured ? "config" : "function";
      for (const source of list) wanted.set(`${fn.name}\n${JSON.stringify(source)}`, { fn: fn.name, source, from });
    }
    for (const [key, b] of this.#bindings) {
      if (wanted.has(key)) continue;
      b.binding.stop();
      this.#bindings.delete(key);
      this.#logger.info({ fn: b.binding.functionName, source: b.binding.topic }, "source unbound");
    }
    for (const [key, w] of wanted) {
      if (this.#bindings.has(key) || this.#closed) continue;
      const link = sourceBroker(w.source) === "mqtt" ? this.#mqtt : this.#nats;
      const binding = new SourceBinding(this.#table, w.fn, w.source, link, this.#logger);
      this.#bindings.set(key, { binding, from: w.from });
      // Without its broker, start() only records why it is not bound: no await, so a sync
      // without brokers completes synchronously (see status()).
      const started = binding.start();
      if (link) await started;
      if (binding.subscribed) this.#logger.info({ fn: w.fn, broker: link!.url, source: binding.topic }, "source bound");
    }
  }

  status(): ConnectorsStatus {
    if (!this.enabled && !this.#closed) void this.#sync();
    return {
      brokers: this.#links.map((l) => l.status()),
      sources: [...this.#bindings.values()].map(({ binding: b, from }) => ({
        function: b.functionName,
        broker: b.broker,
        topic: b.topic,
        from,
        connected: b.connected,
        liveStreams: b.liveStreams,
        error: b.error ?? null,
        ...b.counters,
      })),
    };
  }

  /**
   * Takes no more messages (unsubscribes every source). The links stay up, so outputs of the
   * streams still finishing during the server's shutdown are still published.
   */
  async stopSources(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#syncing;
    for (const { binding } of this.#bindings.values()) binding.stop();
  }

  /** Unsubscribes and disconnects. Streams the sources opened are left to the table (the server's shutdown ends them). */
  async close(): Promise<void> {
    await this.stopSources();
    this.#bindings.clear();
    await Promise.all(this.#links.map((l) => l.close()));
  }
}
