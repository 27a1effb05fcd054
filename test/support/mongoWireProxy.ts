/**
 * A TCP proxy in front of a MongoDB server (mongod or FerretDB) that can hold chosen commands: the
 * MongoDB counterpart of a PostgreSQL row lock in a test. A held command's connection sends nothing
 * more until it is released; releases go one at a time, each once the previous one has been answered,
 * so writes reach the database in the order they were held. Parses the wire protocol's OP_MSG only
 * (drivers send every command as one; no compression is negotiated by default).
 */
import net from 'node:net';
import { BSON } from 'mongodb';

const OP_MSG = 2013;
export type Command = Record<string, unknown>;

interface HeldConnection {
  /** Sends what was held, and resolves with the server's next answer on that connection. */
  release(): Promise<void>;
}

export class MongoWireProxy {
  private readonly server: net.Server;
  private holding: ((command: Command) => boolean) | undefined;
  private readonly held: HeldConnection[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.connect(client));
  }

  /** Listens on a free loopback port in front of the server of `uri` (a mongodb:// URI). */
  static async start(uri: string): Promise<MongoWireProxy> {
    const { hostname, port } = new URL(uri);
    const proxy = new MongoWireProxy({ host: hostname, port: Number(port || 27017) });
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** `uri` with its host and port replaced by the proxy's. */
  uri(uri: string): string {
    const url = new URL(uri);
    url.host = `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
    return url.toString();
  }

  /** Holds, from now on, every command `matches` accepts (with all later traffic of its connection). */
  hold(matches: (command: Command) => boolean): void {
    this.holding = matches;
  }

  /** How many commands are held. */
  get waiting(): number {
    return this.held.length;
  }

  /** Stops holding and lets the held commands through in the order they came, each after the previous one's answer. */
  async releaseInOrder(): Promise<void> {
    this.holding = undefined;
    for (const connection of this.held.splice(0)) await connection.release();
  }

  async close(): Promise<void> {
    this.holding = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private connect(client: net.Socket): void {
    const upstream = net.connect(this.target);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.pipe(client);
    let buffered = Buffer.alloc(0);
    let queue: Buffer[] | undefined;
    client.on('data', (data: Buffer) => {
      buffered = Buffer.concat([buffered, data]);
      while (buffered.length >= 4 && buffered.length >= buffered.readInt32LE(0)) {
        const message = buffered.subarray(0, buffered.readInt32LE(0));
        buffered = buffered.subarray(message.length);
        if (!queue && this.holding && this.holding(commandOf(message))) {
          const waiting: Buffer[] = [];
          queue = waiting;
          this.held.push({
            release: () =>
              new Promise<void>((resolve) => {
                upstream.once('data', () => resolve());
                queue = undefined;
                for (const part of waiting) upstream.write(part);
              }),
          });
        }
        if (queue) queue.push(message);
        else upstream.write(message);
      }
    });
  }
}

/** The command document of an OP_MSG (its body section); an empty one for anything else. */
function commandOf(message: Buffer): Command {
  if (message.readInt32LE(12) !== OP_MSG) return {};
  // Header (16 bytes), flag bits (4), then sections: kind 0 is the body, one BSON document.
  let offset = 20;
  while (offset < message.length) {
    const kind = message[offset];
    const size = message.readInt32LE(offset + 1);
    if (kind === 0) return BSON.deserialize(message.subarray(offset + 1, offset + 1 + size));
    offset += 1 + size;
  }
  return {};
}
