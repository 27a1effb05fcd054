/**
 * The local cluster's load balancer: a round-robin HTTP and WebSocket (LiveQuery) proxy on the public port in
 * front of several Parse Server instances. An instance that refuses connections is skipped until it answers
 * again; a GET or HEAD that found it down goes to the next one, any other request is answered 502 (its body
 * may already be read), so the client retries. Each request names its client in X-Forwarded-For.
 */
import http from 'node:http';
import net from 'node:net';

export interface RoundRobinProxy {
  close(): Promise<void>;
}

/** How long an instance that refused a connection is left out of the rotation. */
const DOWN_FOR_MS = 2_000;

/** GET and HEAD requests carry no body: they may be sent again to another instance. */
function bodiless(req: http.IncomingMessage): boolean {
  return req.method === 'GET' || req.method === 'HEAD';
}

/**
 * The request's headers with X-Forwarded-For naming the connection's address, whatever the client sent: the
 * proxy is the edge, and the instances believe this header from it alone (TRUST_PROXY).
 */
function withClientAddress(req: http.IncomingMessage): http.IncomingHttpHeaders {
  return { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress ?? '' };
}

export async function startRoundRobinProxy(port: number, host: string, backendPorts: number[]): Promise<RoundRobinProxy> {
  const downUntil = new Map<number, number>();
  let next = 0;
  const pick = (): number => {
    for (let tried = 0; tried < backendPorts.length; tried++) {
      const backend = backendPorts[next++ % backendPorts.length];
      if ((downUntil.get(backend) ?? 0) <= Date.now()) return backend;
    }
    return backendPorts[next++ % backendPorts.length];
  };
  const markDown = (backend: number, error: NodeJS.ErrnoException) => {
    if (error.code === 'ECONNREFUSED' || error.code === 'ECONNRESET') downUntil.set(backend, Date.now() + DOWN_FOR_MS);
  };

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, attemptsLeft: number) => {
    const backend = pick();
    const upstream = http.request({ host: '127.0.0.1', port: backend, method: req.method, path: req.url, headers: withClientAddress(req) }, (answer) => {
      // Which instance answered (its port), for whoever follows a request through the cluster.
      res.writeHead(answer.statusCode ?? 502, [...answer.rawHeaders, 'X-Served-By', String(backend)] as unknown as http.OutgoingHttpHeaders);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      markDown(backend, error);
      // A request without a body that found an instance down goes to the next one; one with a body has been read.
      if (!res.headersSent && attemptsLeft > 1 && error.code === 'ECONNREFUSED' && bodiless(req)) return forward(req, res, attemptsLeft - 1);
      if (res.headersSent) res.destroy();
      else res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'bad_gateway', message: `instance on port ${backend}: ${error.message}` }));
    });
    if (bodiless(req)) upstream.end();
    else req.pipe(upstream);
    res.once('close', () => upstream.destroy());
  };
  const server = http.createServer((req, res) => forward(req, res, backendPorts.length));
  // LiveQuery's WebSocket: the upgrade request goes to one instance, then the bytes flow both ways.
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const backend = pick();
    const upstream = net.connect(backend, '127.0.0.1', () => {
      const headers = Object.entries(withClientAddress(req)).flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((v) => `${name}: ${v}`));
      upstream.write([`${req.method} ${req.url} HTTP/1.1`, ...headers, '', ''].join('\r\n'));
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', (error) => {
      markDown(backend, error);
      socket.destroy();
    });
    socket.on('error', () => upstream.destroy());
    socket.on('close', () => upstream.destroy());
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
