/**
 * A request body that stalls (cloud/inputBounds.ts boundedBody): cut with 408 naming REST_BODY_IDLE_TIMEOUT
 * once nothing arrives for that long, however much of REST_BODY_TIMEOUT is left; a body that keeps
 * arriving, or that waits on the server's own reader, is not.
 */
import type http from 'node:http';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type BodyBounds, boundedBody } from '../../cloud/inputBounds';

const IDLE_MS = 150;
const bounds: BodyBounds = { maxBytes: 1 << 20, maxBytesSetting: 'REST_MAX_STREAM_BYTES', timeoutMs: 60_000, idleTimeoutMs: IDLE_MS };

/** A request whose body the test writes. */
function request(): PassThrough & http.IncomingMessage {
  const body = new PassThrough() as PassThrough & http.IncomingMessage;
  Object.assign(body, { headers: {}, complete: false });
  // As Node's IncomingMessage: complete once the whole body has been read.
  body.once('end', () => Object.assign(body, { complete: true }));
  return body;
}

function drain(): Writable {
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

test('a body that sends half a line and stalls is cut with 408 naming REST_BODY_IDLE_TIMEOUT', async () => {
  const req = request();
  req.write('{"content":"half a li');
  const started = Date.now();
  const error = await pipeline(boundedBody(req, bounds), drain()).then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toMatchObject({ status: 408, code: 'timeout', message: `request body stalled: nothing arrived for REST_BODY_IDLE_TIMEOUT = ${IDLE_MS} ms` });
  expect(Date.now() - started).toBeLessThan(bounds.timeoutMs);
});

test('a body that keeps arriving, more slowly than the idle bound in total but never idle that long, is read whole', async () => {
  const req = request();
  let sent = 0;
  const sender = setInterval(() => {
    if (++sent === 8) {
      clearInterval(sender);
      req.end(`{"content":"line ${sent}"}\n`);
    } else req.write(`{"content":"line ${sent}"}\n`);
  }, IDLE_MS / 3);
  let received = '';
  await pipeline(
    boundedBody(req, bounds),
    new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        received += chunk.toString();
        done();
      },
    }),
  );
  expect(received.split('\n').filter(Boolean)).toHaveLength(8);
});

test("a body held back by the server's own slow reader is not taken for a stalled one", async () => {
  const req = request();
  // Pieces that fill the request's buffer: it is paused while the reader works through them.
  for (let piece = 0; piece < 8; piece++) req.write(Buffer.alloc(64 * 1024, 'x'));
  req.end();
  // A reader that takes longer than the idle bound before it asks for more.
  const slow = new Writable({
    highWaterMark: 1024,
    write: (_chunk, _encoding, done) => setTimeout(done, IDLE_MS * 2),
  });
  await expect(pipeline(boundedBody(req, { ...bounds, idleTimeoutMs: IDLE_MS }), slow)).resolves.toBeUndefined();
});
