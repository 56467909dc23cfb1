import { createServer, Server, Socket } from 'node:net';

/**
 * A TCP proxy a test puts between the app and a server (PostgreSQL) and then breaks on purpose:
 * - `refuse()`: every open connection is reset and nothing listens any more (the database went away);
 * - `blackHole()`: connections stay open and new ones are accepted, but not a byte moves either way
 *   (a network partition, or a database frozen mid-query);
 * - `restore()`: listening and forwarding again; connections black-holed meanwhile are reset, as a
 *   partition that lasted long enough leaves them (their client saw no answer for many seconds).
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  private mode: 'up' | 'refusing' | 'black-hole' = 'up';
  /** Connections the proxy accepted so far. */
  accepted = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const port = await new Promise<number>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', reject);
      probe.listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as { port: number };
        probe.close(() => resolve(free));
      });
    });
    const proxy = new TcpProxy(target.host, target.port, port);
    await proxy.listen();
    return proxy;
  }

  get state(): string {
    return this.mode;
  }

  /** Closes every connection and stops listening: connecting is refused (ECONNREFUSED). */
  async refuse(): Promise<void> {
    this.mode = 'refusing';
    this.resetAll();
    await this.close();
  }

  /** Keeps connections, accepts new ones, forwards nothing. */
  async blackHole(): Promise<void> {
    if (!this.server) await this.listen();
    this.mode = 'black-hole';
    for (const [client, upstream] of this.pairs) {
      client.unpipe();
      upstream.unpipe();
      client.pause();
      upstream.pause();
    }
  }

  async restore(): Promise<void> {
    if (this.mode === 'black-hole') this.resetAll();
    this.mode = 'up';
    if (!this.server) await this.listen();
  }

  async stop(): Promise<void> {
    this.resetAll();
    await this.close();
  }

  private listen(): Promise<void> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  private close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  private accept(client: Socket): void {
    this.accepted += 1;
    client.on('error', () => undefined);
    if (this.mode === 'black-hole') {
      // Accepted by the kernel and kept, never answered: the client waits for the server's greeting.
      client.pause();
      const pair: [Socket, Socket] = [client, new Socket()];
      this.pairs.add(pair);
      client.once('close', () => this.pairs.delete(pair));
      return;
    }
    const upstream = new Socket();
    upstream.on('error', () => client.destroy());
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const forget = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.once('close', forget);
    upstream.once('close', forget);
    upstream.connect(this.targetPort, this.targetHost, () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  private resetAll(): void {
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      if (!upstream.destroyed) upstream.destroy();
    }
    this.pairs.clear();
  }
}
