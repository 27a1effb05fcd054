/** A webhook receiver on the one address the test stack lets webhooks reach, recording each delivery with its raw body. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WEBHOOK_TEST_HOST } from './stackInfo';

export interface WebhookDelivery {
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface WebhookReceiver {
  url: string;
  deliveries: WebhookDelivery[];
  close(): Promise<void>;
}

/** Answers each delivery with the next status of `answers` (the last one repeats) and `headers` (e.g. a redirect's Location). */
export async function startWebhookReceiver(answers: number[] = [204], headers: Record<string, string> = {}): Promise<WebhookReceiver> {
  const deliveries: WebhookDelivery[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(answers[Math.min(deliveries.length - 1, answers.length - 1)], headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, WEBHOOK_TEST_HOST, resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://${WEBHOOK_TEST_HOST}:${port}/hooks/batch`, deliveries, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
