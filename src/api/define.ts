import { StreamfnError } from "./errors.js";
import { validateOptions } from "./options.js";
import { validateSources } from "./sources.js";
import { kStreamFunction } from "./types.js";
import type { StreamFunction, StreamFunctionDefinition } from "./types.js";

/**
 * Declares a stream function. The handler gets every event of one stream, in order, through
 * `events`; it yields outputs (async generator) or returns one (async function).
 */
export function defineStreamFunction<In = unknown, Out = unknown>(
  definition: StreamFunctionDefinition<In, Out>,
): StreamFunction<In, Out> {
  if (typeof definition !== "object" || definition === null || typeof definition.handler !== "function") {
    throw new StreamfnError("INVALID_FUNCTION", "defineStreamFunction needs an object with a handler function");
  }
  const options = validateOptions(definition, "defineStreamFunction");
  const sources = Object.freeze(validateSources(definition.sources, "defineStreamFunction"));
  return Object.freeze({ [kStreamFunction]: true as const, handler: definition.handler, options, sources });
}

export function isStreamFunction(value: unknown): value is StreamFunction {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Record<symbol, unknown>)[kStreamFunction] === true &&
    typeof (value as { handler?: unknown }).handler === "function"
  );
}
