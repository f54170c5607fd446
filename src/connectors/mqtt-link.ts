import { randomBytes } from "node:crypto";
import mqtt from "mqtt";
import type { IPublishPacket, MqttClient } from "mqtt";
import { StreamfnError } from "../api/errors.js";
import { GapClock, PublishWindow, linkStatus, parseSeqText, redactUrl } from "./link.js";
import type { BrokerLink, LinkStatus, MessageHandler, PublishOptions } from "./link.js";
import { topicMatches } from "./topics.js";

export interface ConnectorLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface MqttLinkOptions {
  url: string;
  username?: string;
  password?: string;
  /** How long the first connect may take. Default 5 000. */
  connectTimeoutMs?: number;
  logger: ConnectorLogger;
}

/** QoS 1 messages the broker may have in flight to us before it waits for our acknowledgements. */
const kReceiveMaximum = 64;

/**
 * MQTT 5 subscription options: `rh: 2`, no retained messages on subscribe (a device's last
 * retained reading would otherwise open a stale stream on every start); `nl`, not our own
 * publishes (an output topic under a source's filter must not feed the function back).
 */
const kSubscribeOptions = (qos: 0 | 1) => ({ qos, rh: 2, nl: true });

/** MQTT 5 CONNACK reason codes that mean the credentials were refused. */
const kAuthReasons = new Set([0x86, 0x87, 0x8c]);

/**
 * One MQTT 5 connection (MQTT.js). Incoming messages are taken one at a time: the next packet
 * is not read, and a QoS 1 message not acknowledged, until the sources it matches took it. So a
 * stream whose inbox is full stops the connection (TCP flow control up to the broker, which
 * holds or drops by its own limits) instead of our buffering without bound.
 */
export class MqttLink implements BrokerLink {
  readonly kind = "mqtt" as const;
  readonly url: string;
  readonly #client: MqttClient;
  readonly #logger: ConnectorLogger;
  readonly #subs = new Map<number, { filter: string; handler: MessageHandler }>();
  #nextSub = 1;
  readonly #window = new PublishWindow();
  readonly #gaps = new GapClock();
  #closed = false;

  private constructor(url: string, client: MqttClient, logger: ConnectorLogger) {
    this.url = url;
    this.#client = client;
    this.#logger = logger;
    client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void) => {
      this.#cork();
      const wait = this.#dispatch(packet);
      if (wait) wait.then(() => done(), () => done());
      else done();
    };
    client.on("close", () => {
      if (!this.#closed) this.#gaps.down();
    });
    client.on("offline", () => {
      if (this.#closed) return;
      this.#gaps.down();
      this.#logger.warn({ broker: this.url }, "MQTT broker disconnected; reconnecting");
    });
    client.on("connect", () => void this.#reconnected());
    client.on("error", (err) => {
      if (!this.#closed) this.#logger.warn({ broker: this.url, err: err.message }, "MQTT connection error");
    });
  }

  /** Connects, failing fast with a typed error naming the broker (a wrong URL must not hang the start). */
  static async connect(options: MqttLinkOptions): Promise<MqttLink> {
    const shown = redactUrl(options.url);
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new StreamfnError("INVALID_OPTIONS", `--mqtt: not a URL: ${JSON.stringify(shown)} (want mqtt://host:1883)`);
    }
    if (!["mqtt:", "mqtts:", "tcp:", "ssl:", "ws:", "wss:"].includes(parsed.protocol)) {
      throw new StreamfnError("INVALID_OPTIONS", `--mqtt: unsupported scheme ${parsed.protocol} in ${shown} (want mqtt:// or mqtts://)`);
    }
    const timeout = options.connectTimeoutMs ?? 5_000;
    const client = mqtt.connect(options.url, {
      protocolVersion: 5,
      clean: true,
      clientId: `streamfn-${randomBytes(6).toString("hex")}`,
      username: options.username ?? (decodeURIComponent(parsed.username) || undefined),
      password: options.password ?? (decodeURIComponent(parsed.password) || undefined),
      connectTimeout: timeout,
      // No retry until the first connect succeeded: a refused start must fail, not loop.
      reconnectPeriod: 0,
      // Renewed by #reconnected, which reports the gap once it is done.
      resubscribe: false,
      properties: { receiveMaximum: kReceiveMaximum },
      // MQTT.js traces every step through `debug`, which costs even when off (~3% of this
      // path's CPU); our own log says what matters.
      log: () => {},
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`no answer within ${timeout} ms`)), timeout + 500);
      const finish = (err?: Error & { code?: unknown }): void => {
        clearTimeout(timer);
        client.off("connect", onConnect);
        client.off("error", onError);
        client.off("close", onClose);
        if (!err) return resolve();
        client.end(true);
        const code = typeof err.code === "number" ? err.code : undefined;
        if (code !== undefined && kAuthReasons.has(code)) {
          reject(new StreamfnError("BROKER_AUTH_FAILED", `MQTT broker ${shown} refused the credentials: ${err.message}`, { cause: err }));
        } else {
          reject(new StreamfnError("BROKER_UNREACHABLE", `cannot connect to MQTT broker ${shown}: ${err.message}`, { cause: err }));
        }
      };
      const onConnect = (): void => finish();
      const onError = (err: Error): void => finish(err);
      const onClose = (): void => finish(new Error("the connection closed before the broker accepted it"));
      client.on("connect", onConnect);
      client.on("error", onError);
      client.on("close", onClose);
    });
    // Connected once: from now on a lost broker is waited for, forever.
    client.options.reconnectPeriod = 500;
    return new MqttLink(shown, client, options.logger);
  }

  get connected(): boolean {
    return this.#client.connected && !this.#resubscribing;
  }

  #resubscribing = false;

  /**
   * Renews every subscription itself (a clean session starts with none), so that "connected"
   * in status means subscribed again, and the gap is reported once that is done.
   */
  async #reconnected(): Promise<void> {
    if (this.#closed || !this.#gaps.isDown) return;
    this.#resubscribing = true;
    const filters = [...new Set([...this.#subs.values()].map((s) => s.filter))];
    try {
      for (const f of filters) await this.#client.subscribeAsync(f, kSubscribeOptions(this.#qos.get(f) ?? 1));
    } catch (err) {
      this.#logger.error({ broker: this.url, err: (err as Error).message }, "MQTT resubscribe failed");
    } finally {
      this.#resubscribing = false;
    }
    const ms = this.#gaps.up();
    this.#logger.warn(
      { broker: this.url, gapMs: ms, reconnects: this.#gaps.reconnects, subscriptions: filters.length },
      `MQTT broker reconnected after ${ms} ms and ${filters.length} subscription(s) renewed; messages published meanwhile were not received`,
    );
  }

  readonly #qos = new Map<string, 0 | 1>();

  #dispatch(packet: IPublishPacket): Promise<void> | undefined {
    const topic = packet.topic;
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    const prop = packet.properties?.userProperties?.seq;
    const seq = parseSeqText(Array.isArray(prop) ? prop[prop.length - 1] : prop);
    let waits: Promise<void>[] | undefined;
    for (const sub of this.#subs.values()) {
      if (!topicMatches(sub.filter, topic, "mqtt")) continue;
      const w = sub.handler({ topic, payload, seq });
      if (w) (waits ??= []).push(w);
    }
    if (!waits) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  async subscribe(filter: string, qos: 0 | 1, handler: MessageHandler): Promise<() => void> {
    const id = this.#nextSub++;
    this.#subs.set(id, { filter, handler });
    this.#qos.set(filter, Math.max(qos, this.#qos.get(filter) ?? 0) as 0 | 1);
    try {
      const granted = await this.#client.subscribeAsync(filter, kSubscribeOptions(qos));
      const g = granted[0];
      if (g && g.qos >= 0x80) throw new Error(`the broker refused the subscription (reason code ${g.qos})`);
    } catch (err) {
      this.#subs.delete(id);
      throw new StreamfnError("BROKER_UNREACHABLE", `MQTT broker ${this.url}: subscribing to ${JSON.stringify(filter)} failed: ${(err as Error).message}`, { cause: err });
    }
    return () => {
      this.#subs.delete(id);
      if ([...this.#subs.values()].some((s) => s.filter === filter)) return;
      if (!this.#closed) this.#client.unsubscribe(filter);
    };
  }

  #corked = false;

  /**
   * Holds the socket's writes until the event loop's next turn. MQTT.js takes one packet per
   * tick and writes each acknowledgement and publish on its own: a write call per message in
   * and per output out, the largest cost of this path. Corked, every PUBACK of one read chunk
   * and every output of one batch from the instance leave in one write.
   */
  #cork(): void {
    if (this.#corked) return;
    const stream = this.#client.stream as { cork?: () => void; uncork?: () => void } | undefined;
    if (!stream?.cork || !stream.uncork) return;
    this.#corked = true;
    stream.cork();
    setImmediate(() => {
      this.#corked = false;
      stream.uncork!();
    });
  }

  publish(topic: string, payload: string | Uint8Array, o: PublishOptions): void {
    this.#cork();
    this.#window.begin();
    this.#client.publish(
      topic,
      typeof payload === "string" ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      { qos: o.qos, properties: { userProperties: { n: String(o.n), streamId: o.streamId, function: o.functionName } } },
      (err) => {
        this.#window.done(!err);
        if (err && !this.#closed) this.#logger.warn({ broker: this.url, topic, n: o.n, err: err.message }, "MQTT publish failed");
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
    return linkStatus("mqtt", this.url, this.connected, this.#gaps, this.#window);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Outputs already handed over get up to a second to reach the broker.
    await Promise.race([this.#client.endAsync(false), new Promise((r) => setTimeout(r, 1_000).unref())]);
    this.#client.end(true);
  }
}
