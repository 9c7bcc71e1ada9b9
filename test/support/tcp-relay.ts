import * as net from 'node:net';

/** Options of {@link startTcpRelay}. */
export interface TcpRelayOptions {
  /** The address the relay listens on (default 127.0.0.1; `::1` for an IPv6-only front). */
  readonly listenHost?: string;
  /**
   * Holds back what clients send from the first chunk containing `text` on (the SQL of a
   * query travels as plain text without TLS), until `count` connections are held or
   * `timeoutMs` has passed; then lets them all go at once. How a test makes several
   * processes send one statement at the same moment, to hit a race every time instead of
   * by chance, without locking anything on the server.
   */
  readonly holdBack?: { readonly text: string; readonly count: number; readonly timeoutMs: number };
}

/** A running relay; see {@link startTcpRelay}. */
export interface TcpRelay {
  readonly port: number;
  /** Connections accepted so far. */
  connections(): number;
  /** Connections whose `holdBack` text was held back (and then let go). */
  held(): number;
  close(): void;
}

/** A TCP relay to a server on 127.0.0.1:`targetPort`. */
export async function startTcpRelay(targetPort: number, options: TcpRelayOptions = {}): Promise<TcpRelay> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const holdBack = options.holdBack;
  const waiting: Array<() => void> = [];
  let held = 0;
  let gateOpen = false;
  let timer: NodeJS.Timeout | undefined;
  const openGate = (): void => {
    gateOpen = true;
    if (timer !== undefined) clearTimeout(timer);
    for (const release of waiting.splice(0)) release();
  };

  const relay = net.createServer((client) => {
    connections += 1;
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    let holding = false;
    const queued: Buffer[] = [];
    client.on('data', (chunk: Buffer) => {
      if (!holding && holdBack !== undefined && !gateOpen && chunk.includes(holdBack.text)) {
        holding = true;
        held += 1;
        timer ??= setTimeout(openGate, holdBack.timeoutMs);
        waiting.push(() => {
          holding = false;
          for (const data of queued.splice(0)) upstream.write(data);
        });
        if (held >= holdBack.count) setImmediate(openGate);
      }
      if (holding) queued.push(chunk);
      else upstream.write(chunk);
    });
    client.on('end', () => upstream.end());
  });
  await new Promise<void>((resolve, reject) =>
    relay.once('error', reject).listen(0, options.listenHost ?? '127.0.0.1', resolve),
  );
  return {
    port: (relay.address() as net.AddressInfo).port,
    connections: () => connections,
    held: () => held,
    close: () => {
      if (timer !== undefined) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      relay.close();
    },
  };
}
