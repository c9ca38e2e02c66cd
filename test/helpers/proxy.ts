import { createServer, request, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Forwards `req` to `target` (`http://host:port`) and returns the upstream response, unread. */
export function forward(req: IncomingMessage, target: string, body?: AsyncIterable<Buffer> | Buffer): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const u = new URL(req.url ?? '/', target);
    // The Host header stays the proxy's, so that Locations the registry builds point back at us.
    const headers = { ...req.headers };
    const up = request(u, { method: req.method, headers }, resolve);
    up.on('error', reject);
    if (Buffer.isBuffer(body)) up.end(body);
    else if (body) {
      (async () => {
        for await (const c of body) up.write(c);
        up.end();
      })().catch((e: Error) => {
        // A client that gave up mid-body must not leave the registry waiting for the rest.
        up.destroy(e);
        reject(e);
      });
    } else req.pipe(up);
  });
}

/** Copies an upstream response to the client as is. */
export function relay(up: IncomingMessage, res: ServerResponse): void {
  res.writeHead(up.statusCode ?? 502, up.headers);
  up.pipe(res);
}

/** Relays an upstream response until `limit` body bytes have gone, then cuts the connection. */
export function relayCut(up: IncomingMessage, res: ServerResponse, limit: number): void {
  res.writeHead(up.statusCode ?? 502, up.headers);
  let sent = 0;
  up.on('data', (c: Buffer) => {
    if (sent >= limit) return;
    res.write(c);
    sent += c.length;
    if (sent >= limit) {
      up.destroy();
      res.socket?.destroy();
    }
  });
}

/** Forwards `req`, lets the registry answer in full, and drops the connection: the answer is lost. */
export async function loseAnswer(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
  const up = await forward(req, target);
  up.resume();
  await new Promise((r) => up.on('end', r));
  res.socket?.destroy();
}

export type ProxyHandler = (req: IncomingMessage, res: ServerResponse, target: string) => Promise<boolean | void> | boolean | void;

export interface Proxy {
  host: string;
  url: string;
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>;
  close(): Promise<void>;
}

/**
 * A real HTTP proxy in front of a real registry. `handler` may take over a request (return true)
 * to inject a fault; everything else is relayed untouched.
 */
export async function startProxy(target: string, handler?: ProxyHandler): Promise<Proxy> {
  const requests: Proxy['requests'] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    (async () => {
      if (handler && (await handler(req, res, target))) return;
      relay(await forward(req, target), res);
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
