// Runs Google's functions framework exactly as its `functions-framework` command does (same
// argument parsing, loader, Express server), bound to the loopback address only.
import { createRequire } from "node:module";
import { Server } from "node:net";
import { dirname, join } from "node:path";

const listen = Server.prototype.listen as (...args: unknown[]) => Server;
Server.prototype.listen = function (this: Server, ...args: unknown[]): Server {
  if (typeof args[0] === "number" && typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  return listen.apply(this, args);
} as Server["listen"];

const require = createRequire(import.meta.url);
require(join(dirname(require.resolve("@google-cloud/functions-framework")), "main.js"));
