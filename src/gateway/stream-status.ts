import type { EndedStream, RetainedOutput, StreamHandle } from "../router/stream-table.js";

/** The JSON behind `GET /v1/functions/:fn/streams/:streamId` for a live stream. */
export function liveStreamStatus(stream: StreamHandle): Record<string, unknown> {
  return {
    function: stream.functionName,
    streamId: stream.streamId,
    state: stream.state,
    inputEnded: stream.inputEnd ?? null,
    version: stream.version,
    instance: stream.instanceId ?? null,
    events: stream.events,
    outputs: stream.outputs,
    duplicates: stream.duplicates,
    lastSeq: stream.lastSeq,
    queued: stream.queued,
    inflight: stream.inflight,
    heldOutputs: stream.heldOutputs,
    subscribers: stream.subscribers,
    replayable: replayable(stream.retained),
    openedAt: iso(stream.openedAt),
    boundAt: stream.boundAt === undefined ? null : iso(stream.boundAt),
    start: startOf(stream.boundAt, stream.cold),
    coldStartMs: roundMs(stream.coldStartMs),
    lastEventAt: stream.events === 0 ? null : iso(stream.lastEventTime),
  };
}

/** The same for a stream that ended within the retention window: its end record. */
export function endedStreamStatus(functionName: string, streamId: string, ended: EndedStream): Record<string, unknown> {
  const body: Record<string, unknown> = {
    function: functionName,
    streamId,
    state: "ended",
    status: ended.status,
    reason: ended.reason,
    version: ended.version ?? null,
    events: ended.events,
    outputs: ended.outputs,
    duplicates: ended.duplicates ?? null,
    replayable: replayable(ended.retained),
    openedAt: ended.openedAt === undefined ? null : iso(ended.openedAt),
    boundAt: ended.boundAt === undefined ? null : iso(ended.boundAt),
    instance: ended.instance ?? null,
    start: startOf(ended.boundAt, ended.cold),
    coldStartMs: roundMs(ended.coldStartMs),
    lastEventAt: ended.lastEventAt === undefined ? null : iso(ended.lastEventAt),
    endedAt: iso(ended.endedAt),
  };
  if (ended.error) body.error = ended.error;
  return body;
}

/** Which output numbers a subscriber can still replay, or null when none are kept. */
function replayable(retained: readonly RetainedOutput[] | undefined): { from: number; to: number } | null {
  if (!retained || retained.length === 0) return null;
  return { from: retained[0]!.n, to: retained[retained.length - 1]!.n };
}

/** `cold` (waited for a new instance), `warm` (found one ready), null before it got a slot or when the table cannot tell. */
function startOf(boundAt: number | undefined, cold: boolean | undefined): "cold" | "warm" | null {
  if (boundAt === undefined || cold === undefined) return null;
  return cold ? "cold" : "warm";
}

function roundMs(ms: number | undefined): number | null {
  return ms === undefined ? null : Math.round(ms * 10) / 10;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
