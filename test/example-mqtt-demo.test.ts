// `npm run demo:mqtt`: the sensor-burst example fed from MQTT end to end (mosquitto, the served example, alerts back over MQTT).
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { runMqttDemo } from "../examples/mqtt/demo.js";
import { kSkipWithoutMosquitto } from "./helpers/mosquitto.js";

describe("demo:mqtt", { skip: kSkipWithoutMosquitto }, () => {
  it("every sensor's burst is one stream; the spiking sensors raise one alert each; bursts end by end topic or idle", async () => {
    const lines: string[] = [];
    const r = await runMqttDemo({ sensors: 8, readings: 30, intervalMs: 5 }, (l) => lines.push(l));
    assert.equal(r.summaries.length, 8);
    assert.deepEqual(r.anomalies.map((a) => a.device).sort(), ["sensor-001", "sensor-005"]);
    assert.ok(r.anomalies.every((a) => a.peakZ > 4));
    const reasons = Object.fromEntries(r.summaries.map((s) => [s.device, s.endReason]));
    assert.equal(reasons["sensor-001"], "end");
    assert.equal(reasons["sensor-002"], "idle");
    assert.ok(r.summaries.every((s) => s.readings === 30));
    assert.ok(lines.some((l) => l.startsWith("ALERT   sensor-001")), lines.join("\n"));
  });
});
