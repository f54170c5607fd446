/**
 * The environment a function sees. The server's own configuration (`STREAMFN_*`: tokens, the
 * auth file, the NATS URL with its credentials) is the platform's, not the function's: a
 * function that could read it could act as an admin. Everything else passes through, as a
 * function author expects of environment variables.
 */
export function sandboxEnv(extra?: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.toUpperCase().startsWith("STREAMFN_")) env[k] = v;
  }
  return extra ? Object.assign(env, extra) : env;
}
