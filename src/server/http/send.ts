import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

/**
 * Takes the response over from fastify (status and headers as set on the reply) and lets `body`
 * write it; the response ends when `body` resolves and is cut short when it throws.
 */
export async function sendBody(reply: FastifyReply, body: (res: ServerResponse) => Promise<void>): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  try {
    res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
    await body(res);
    if (!res.destroyed) res.end();
  } catch (err) {
    reply.log.error({ err }, 'sending a response body failed');
    res.destroy(err as Error);
  }
}
