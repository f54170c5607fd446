import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The file a sandbox thread, a child process or a check thread starts from. The build bundles
 * each entry into one CommonJS file (scripts/build.mjs): a thread boots Node's module loader
 * anew, and resolving, reading and linking the runtime's modules one by one was a third of a
 * thread's start. A tree compiled by tsc alone has only the modules, which work too.
 *
 * The URL is relative to a folder beside runtime/, never to this file's: in the CLI bundle,
 * import.meta.url is the bundle's, in dist/src/cli/.
 */
export function runtimeEntry(name: "worker-main" | "check-main"): string {
  const bundle = fileURLToPath(new URL(`../runtime/${name}.bundle.cjs`, import.meta.url));
  return existsSync(bundle) ? bundle : fileURLToPath(new URL(`../runtime/${name}.js`, import.meta.url));
}
