export interface StreamRoute {
  functionName: string;
  streamId: string | undefined;
  /** What follows the stream id: "events", "end", "outputs", or undefined. */
  action: string | undefined;
}

const kPrefix = "/v1/functions/";

/** Parses `/v1/functions/:fn/streams[/:streamId[/:action]]`; undefined for any other path. */
export function parseStreamPath(pathname: string): StreamRoute | undefined {
  if (!pathname.startsWith(kPrefix)) return undefined;
  const parts = pathname.slice(kPrefix.length).split("/");
  if (parts.length < 2 || parts[1] !== "streams" || !parts[0]) return undefined;
  if (parts.length > 4) return undefined;
  const decode = (s: string | undefined): string | undefined => {
    if (s === undefined || s === "") return undefined;
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const functionName = decode(parts[0])!;
  const streamId = decode(parts[2]);
  const action = decode(parts[3]);
  if (action !== undefined && streamId === undefined) return undefined;
  return { functionName, streamId, action };
}
