import { Counter, Gauge } from "prom-client";
import type { Registry as PromRegistry } from "prom-client";
import type { ConnectorsStatus, SourceStatus } from "./connectors.js";

type SourceLabel = "function" | "broker" | "topic";

/** The connectors' metrics, read from their status at scrape time (the message path only adds to counters). */
export function registerConnectorMetrics(registry: PromRegistry, status: () => ConnectorsStatus): void {
  const registers = [registry];
  const labelNames: SourceLabel[] = ["function", "broker", "topic"];
  const labels = (s: SourceStatus) => ({ function: s.function, broker: s.broker, topic: s.topic });
  const connected: Gauge<SourceLabel> = new Gauge({
    name: "streamfn_source_connected",
    help: "1 while a source (MQTT topic filter or NATS subject bound to a function) is connected and subscribed.",
    labelNames,
    registers,
    collect: () => {
      connected.reset();
      for (const s of status().sources) connected.set(labels(s), s.connected ? 1 : 0);
    },
  });
  const counter = (name: string, help: string, value: (s: SourceStatus) => number): void => {
    const m: Counter<SourceLabel> = new Counter({
      name,
      help,
      labelNames,
      registers,
      collect: () => {
        m.reset();
        for (const s of status().sources) m.inc(labels(s), value(s));
      },
    });
  };
  counter("streamfn_source_messages_in_total", "Messages received on a source.", (s) => s.messagesIn);
  counter("streamfn_source_parse_failures_total", "Source payloads that did not parse as JSON (skipped).", (s) => s.parseFailures);
  counter("streamfn_source_streams_opened_total", "Streams a source opened.", (s) => s.streamsOpened);
  counter("streamfn_source_duplicates_total", "Redelivered source messages dropped by seq.", (s) => s.duplicates);
  counter("streamfn_source_gaps_total", "Source messages missing by seq (lost by the broker or the publisher).", (s) => s.gaps);
  counter("streamfn_source_dropped_total", "Source messages dropped by the connector (no stream id, refused, NATS queue full).", (s) => s.dropped);
  counter("streamfn_source_outputs_total", "Outputs published to a source's output topic.", (s) => s.outputs);
  const brokerUp: Gauge<"broker" | "url"> = new Gauge({
    name: "streamfn_broker_connected",
    help: "1 while the connection to a broker (MQTT or NATS) is up.",
    labelNames: ["broker", "url"],
    registers,
    collect: () => {
      brokerUp.reset();
      for (const b of status().brokers) brokerUp.set({ broker: b.broker, url: b.url }, b.connected ? 1 : 0);
    },
  });
  const reconnects: Counter<"broker" | "url"> = new Counter({
    name: "streamfn_broker_reconnects_total",
    help: "Reconnections to a broker after it was lost.",
    labelNames: ["broker", "url"],
    registers,
    collect: () => {
      reconnects.reset();
      for (const b of status().brokers) reconnects.inc({ broker: b.broker, url: b.url }, b.reconnects);
    },
  });
}
