/** Topic and subject helpers shared by the MQTT and NATS links. */

export type BrokerKind = "mqtt" | "nats";

export function separator(broker: BrokerKind): string {
  return broker === "mqtt" ? "/" : ".";
}

/**
 * Whether `topic` (a concrete topic or subject) matches `filter`. MQTT: `+` one level, `#` the
 * rest (and the parent level); NATS: `*` one token, `>` one or more.
 */
export function topicMatches(filter: string, topic: string, broker: BrokerKind): boolean {
  const sep = separator(broker);
  const one = broker === "mqtt" ? "+" : "*";
  const rest = broker === "mqtt" ? "#" : ">";
  const f = filter.split(sep);
  const t = topic.split(sep);
  for (let i = 0; i < f.length; i++) {
    const part = f[i];
    if (part === rest) return broker === "mqtt" ? t.length >= i : t.length > i;
    if (i >= t.length) return false;
    if (part !== one && part !== t[i]) return false;
  }
  return f.length === t.length;
}

/** The level `index` of a concrete topic, or undefined when it has fewer levels or that one is empty. */
export function topicLevel(topic: string, index: number, broker: BrokerKind): string | undefined {
  const part = topic.split(separator(broker))[index];
  return part === undefined || part === "" ? undefined : part;
}

/** Fills `{streamId}` and `{key}` in an output topic template. */
export function renderTopic(template: string, streamId: string, key: string): string {
  return template.replace(/\{(streamId|key)\}/g, (_m, name: string) => (name === "streamId" ? streamId : key));
}
