import * as net from 'node:net';

/**
 * The passive port range of one server. Hands out ports starting at a random
 * point of the range (so two servers, or two restarts, do not fight over the
 * same first port), tracks which ports its own listeners hold, and gets every
 * port back when a listener closes, so the range cannot leak.
 *
 * A port is free again as soon as its listener stops listening (`release`):
 * a data connection accepted on it does not hold it, and neither does the
 * listener's 'close' event, which waits for that connection to end.
 */
export class PortPool {
  /** Port → the listener holding it. */
  private readonly inUse = new Map<number, net.Server>();
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
      this.inUse.set(port, server);
      const ok = await tryListen(server, host, port);
      if (ok) {
        server.once('close', () => this.release(port, server));
        return port;
      }
      this.inUse.delete(port);
    }
    return null;
  }

  /**
   * Give `port` back once `server` no longer listens on it. Only the listener
   * that holds the port can release it, so a late 'close' of an old listener
   * never frees a port a newer one has taken meanwhile.
   */
  release(port: number, server: net.Server): void {
    if (this.inUse.get(port) === server) this.inUse.delete(port);
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
