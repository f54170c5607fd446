import mqtt from "mqtt";
import type { IClientPublishOptions, MqttClient } from "mqtt";

/** One message a test client received, with the streamfn user properties of an output. */
export interface Received {
  topic: string;
  text: string;
  n: number | undefined;
  streamId: string | undefined;
}

/** A real MQTT 5 client for tests: publishes, and collects what its subscriptions receive. */
export class TestMqttClient {
  readonly client: MqttClient;
  readonly received: Received[] = [];

  private constructor(client: MqttClient) {
    this.client = client;
    client.on("message", (topic, payload, packet) => {
      const p = packet.properties?.userProperties ?? {};
      const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
      const n = one(p.n);
      this.received.push({ topic, text: payload.toString(), n: n === undefined ? undefined : Number(n), streamId: one(p.streamId) });
    });
  }

  static async connect(url: string, options: mqtt.IClientOptions = {}): Promise<TestMqttClient> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, ...options });
    return new TestMqttClient(client);
  }

  async subscribe(filter: string): Promise<void> {
    await this.client.subscribeAsync(filter, { qos: 1 });
  }

  async publish(topic: string, payload: unknown, options: IClientPublishOptions = { qos: 1 }): Promise<void> {
    const body = payload instanceof Uint8Array || typeof payload === "string" ? payload : JSON.stringify(payload);
    await this.client.publishAsync(topic, body as string | Buffer, options);
  }

  /** Outputs received on topics under `prefix`, parsed. */
  outputs(topic: string): { n: number | undefined; streamId: string | undefined; value: unknown }[] {
    return this.received.filter((r) => r.topic === topic).map((r) => ({ n: r.n, streamId: r.streamId, value: JSON.parse(r.text) }));
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
