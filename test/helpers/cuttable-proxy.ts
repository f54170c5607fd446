import { createServer, connect } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";

/**
 * A loopback TCP proxy to a local port whose connections a test can cut (and refuse) at will:
 * one client losing its server while others keep it, which stopping the server cannot do.
 */
export class CuttableProxy {
  readonly #sockets = new Set<Socket>();
  #open = true;

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<CuttableProxy> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const proxy = new CuttableProxy(server, (server.address() as AddressInfo).port);
    server.on("connection", (client) => {
      if (!proxy.#open) {
        client.destroy();
        return;
      }
      const upstream = connect(targetPort, "127.0.0.1");
      for (const s of [client, upstream]) {
        proxy.#sockets.add(s);
        s.on("close", () => proxy.#sockets.delete(s));
        s.on("error", () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    return proxy;
  }

  /** Drops every connection and refuses new ones until `restore`. */
  cut(): void {
    this.#open = false;
    for (const s of this.#sockets) s.destroy();
  }

  restore(): void {
    this.#open = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
