import * as net from 'node:net';

/**
 * The passive port range of one server. Hands out ports starting at a random
 * point of the range (so two servers, or two restarts, do not fight over the
 * same first port), tracks which ports its own listeners hold, and gets every
 * port back when a listener closes, so the range cannot leak.
 */
export class PortPool {
  private readonly inUse = new Set<number>();
  private next: number;

  constructor(
    private readonly first: number,
    private readonly last: number,
  ) {
    this.next = first + Math.floor(Math.random() * (last - first + 1));
  }

  get size(): number {
    return this.last - this.first + 1;
  }

  get used(): number {
    return this.inUse.size;
  }

  /**
   * Listen on a free port of the range. Ports taken by someone else
   * (EADDRINUSE) are skipped. Resolves null when every port is busy.
   */
  async listen(server: net.Server, host: string): Promise<number | null> {
    const n = this.size;
    for (let tried = 0; tried < n; tried++) {
      const port = this.next;
      this.next = port === this.last ? this.first : port + 1;
      if (this.inUse.has(port)) continue;
      this.inUse.add(port);
      const ok = await tryListen(server, host, port);
      if (ok) {
        server.once('close', () => this.inUse.delete(port));
        return port;
      }
      this.inUse.delete(port);
    }
    return null;
  }
}

function tryListen(server: net.Server, host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve(true);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host, port, exclusive: true });
  });
}

/** Listen on any free port. */
export async function listenAnyPort(server: net.Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}
