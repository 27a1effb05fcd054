/** A webhook receiver on a loopback address, recording each delivery with its raw body. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WebhookDelivery {
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface WebhookReceiver {
  url: string;
  deliveries: WebhookDelivery[];
  close(): Promise<void>;
}

/** The URL a batch is given for a receiver listening on `port`: the one place that names the receiver's address. */
export function receiverURL(port: number): string {
  return `http://127.0.0.1:${port}/hooks/batch`;
}

/** Answers each delivery with the next status of `answers` (the last one repeats). */
export async function startWebhookReceiver(answers: number[] = [204]): Promise<WebhookReceiver> {
  const deliveries: WebhookDelivery[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = answers[Math.min(deliveries.length - 1, answers.length - 1)];
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: receiverURL(port), deliveries, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
