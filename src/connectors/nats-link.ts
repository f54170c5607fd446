import { connect as natsConnect, headers as natsHeaders } from "@nats-io/transport-node";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import type { JetStreamClient } from "@nats-io/jetstream";
import { StreamfnError } from "../api/errors.js";
import { natsConnectError } from "../cluster/nats-errors.js";
import { GapClock, PublishWindow, linkStatus, parseSeqText, redactUrl } from "./link.js";
import type { BrokerLink, InboundMessage, LinkStatus, MessageHandler, PublishOptions } from "./link.js";
import type { ConnectorLogger } from "./mqtt-link.js";

export interface NatsLinkOptions {
  /** `nats://[user:pass@|token@]host:4222`, several comma-separated. */
  url: string;
  connectTimeoutMs?: number;
  /** Messages held while their streams are full before more are dropped. Default kNatsQueueLimit. */
  queueLimit?: number;
  logger: ConnectorLogger;
}

/**
 * Messages taken from core NATS subscriptions and waiting for their streams. Core NATS cannot
 * be paused, so while a stream's inbox is full its messages wait here; past this bound they
 * are dropped and counted (core NATS is at-most-once).
 */
export const kNatsQueueLimit = 4096;

interface Queued {
  msg: InboundMessage;
  handler: MessageHandler;
  onDrop: () => void;
}

/** One NATS connection: core subscriptions in, core or JetStream publishes out. */
export class NatsLink implements BrokerLink {
  readonly kind = "nats" as const;
  readonly url: string;
  readonly #nc: NatsConnection;
  readonly #logger: ConnectorLogger;
  #js: JetStreamClient | undefined;
  readonly #window = new PublishWindow();
  readonly #gaps = new GapClock();
  readonly #queue: Queued[] = [];
  #queueHead = 0;
  #draining = false;
  #connected = true;
  #closed = false;

  readonly #queueLimit: number;

  private constructor(url: string, nc: NatsConnection, logger: ConnectorLogger, queueLimit: number) {
    this.url = url;
    this.#queueLimit = queueLimit;
    this.#nc = nc;
    this.#logger = logger;
    void this.#watch();
  }

  async #watch(): Promise<void> {
    const nc = this.#nc;
    try {
      for await (const s of nc.status()) {
        if (this.#closed) break;
        if (s.type === "disconnect") {
          this.#connected = false;
          this.#gaps.down();
          this.#logger.warn({ broker: this.url }, "NATS server disconnected; reconnecting");
        } else if (s.type === "reconnect") {
          this.#connected = true;
          const ms = this.#gaps.up();
          this.#logger.warn(
            { broker: this.url, gapMs: ms, reconnects: this.#gaps.reconnects },
            `NATS server reconnected after ${ms} ms; subscriptions renewed, messages published meanwhile were not received`,
          );
        } else if (s.type === "slowConsumer") {
          this.#logger.warn({ broker: this.url, subject: s.sub.getSubject(), pending: s.pending }, "NATS slow consumer: the server may drop messages");
        }
      }
    } catch {
      // The status feed ends with the connection.
    }
  }

  static async connect(options: NatsLinkOptions): Promise<NatsLink> {
    const urls = options.url.split(",").map((s) => s.trim()).filter(Boolean);
    const shown = urls.map(redactUrl).join(",");
    let user: string | undefined;
    let pass: string | undefined;
    let token: string | undefined;
    const servers: string[] = [];
    for (const u of urls) {
      let parsed: URL;
      try {
        parsed = new URL(u);
      } catch {
        throw new StreamfnError("INVALID_OPTIONS", `--nats: not a URL: ${JSON.stringify(redactUrl(u))} (want nats://host:4222)`);
      }
      if (parsed.protocol !== "nats:" && parsed.protocol !== "tls:") {
        throw new StreamfnError("INVALID_OPTIONS", `--nats: unsupported scheme ${parsed.protocol} in ${redactUrl(u)} (want nats://)`);
      }
      if (parsed.username && parsed.password) {
        user = decodeURIComponent(parsed.username);
        pass = decodeURIComponent(parsed.password);
      } else if (parsed.username) token = decodeURIComponent(parsed.username);
      servers.push(`${parsed.protocol}//${parsed.host}`);
    }
    if (servers.length === 0) throw new StreamfnError("INVALID_OPTIONS", "--nats: no server URL given");
    let nc: NatsConnection;
    try {
      nc = await natsConnect({
        servers,
        user,
        pass,
        token,
        name: "streamfn-connector",
        timeout: options.connectTimeoutMs ?? 5_000,
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        waitOnFirstConnect: false,
        noAsyncTraces: true,
      });
    } catch (err) {
      throw natsConnectError(err, shown, { auth: "BROKER_AUTH_FAILED", unreachable: "BROKER_UNREACHABLE" });
    }
    return new NatsLink(shown, nc, options.logger, options.queueLimit ?? kNatsQueueLimit);
  }

  get connected(): boolean {
    return this.#connected && !this.#nc.isClosed();
  }

  async subscribe(filter: string, _qos: 0 | 1, handler: MessageHandler, onDrop: () => void = () => {}): Promise<() => void> {
    const sub: Subscription = this.#nc.subscribe(filter, {
      callback: (err, m) => {
        if (err) return;
        const msg: InboundMessage = { topic: m.subject, payload: m.data, seq: parseSeqText(m.headers?.get("seq") || undefined) };
        this.#take({ msg, handler, onDrop });
      },
    });
    // A round trip, so that messages published after subscribe() resolved are seen.
    await this.#nc.flush();
    return () => {
      if (!this.#closed) sub.unsubscribe();
    };
  }

  /** Messages go through one at a time, in arrival order, as on MQTT; the drain runs synchronously until a message must wait. */
  #take(q: Queued): void {
    if (this.#queue.length - this.#queueHead >= this.#queueLimit) {
      q.onDrop();
      return;
    }
    this.#queue.push(q);
    if (!this.#draining) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#queueHead < this.#queue.length) {
        const q = this.#queue[this.#queueHead]!;
        const wait = q.handler(q.msg);
        if (wait) await wait.catch(() => {});
        this.#queue[this.#queueHead++] = undefined as unknown as Queued;
        if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
          this.#queue.splice(0, this.#queueHead);
          this.#queueHead = 0;
        }
      }
      this.#queue.length = 0;
      this.#queueHead = 0;
    } finally {
      this.#draining = false;
    }
  }

  publish(topic: string, payload: string | Uint8Array, o: PublishOptions): void {
    const h = natsHeaders();
    h.set("n", String(o.n));
    h.set("streamId", o.streamId);
    h.set("function", o.functionName);
    if (!o.jetstream) {
      try {
        this.#nc.publish(topic, payload, { headers: h });
        this.#window.published++;
      } catch (err) {
        this.#window.failures++;
        this.#logger.warn({ broker: this.url, topic, n: o.n, err: (err as Error).message }, "NATS publish failed");
      }
      return;
    }
    this.#js ??= jetstream(this.#nc);
    this.#window.begin();
    // The message id lets JetStream drop a duplicate publish of the same output.
    this.#js.publish(topic, payload, { headers: h, msgID: `${o.functionName}/${o.streamId}/${o.n}` }).then(
      () => this.#window.done(true),
      (err: unknown) => {
        this.#window.done(false);
        if (!this.#closed) this.#logger.warn({ broker: this.url, topic, n: o.n, err: (err as Error).message }, "JetStream publish failed");
      },
    );
  }

  backedUp(): boolean {
    return this.#window.full;
  }

  onceWritable(cb: () => void): void {
    this.#window.onceWritable(cb);
  }

  status(): LinkStatus {
    return linkStatus("nats", this.url, this.connected, this.#gaps, this.#window);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.race([this.#nc.drain().catch(() => {}), new Promise((r) => setTimeout(r, 1_000).unref())]);
    await this.#nc.close().catch(() => {});
  }
}
