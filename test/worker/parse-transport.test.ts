/** The worker's Parse SDK transport (node:http instead of fetch) against the real Parse Server: answers, errors, writes. */
import { addMemoryBatch, master, memories, newUser, parse } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';
import { useNodeHttpForParse } from '../../worker/parseTransport';

const info = stackInfo();
const endpoint = { appId: info.appId, masterKey: info.masterKey, serverURL: info.serverURL };

beforeAll(() => {
  parse();
  useNodeHttpForParse(endpoint);
});

test('queries and saves go through it and answer as through fetch', async () => {
  const P = parse();
  const { sessionToken } = await newUser();
  const { batch_id } = await addMemoryBatch(sessionToken, { memories: memories(3, 100) });
  const batch = await new P.Query('BatchMemoryRequest').get(batch_id, master);
  expect(batch.get('totalMemories')).toBe(3);
  batch.set('error', 'noted by the transport test');
  await batch.save(null, master);
  expect((await new P.Query('BatchMemoryRequest').get(batch_id, master)).get('error')).toBe('noted by the transport test');
  // A session token in the body is honoured as the SDK sends it.
  expect((await new P.Query('BatchMemoryRequest').get(batch_id, { sessionToken })).id).toBe(batch_id);
});

test('a 4xx answer rejects with the Parse error it carries', async () => {
  await expect(new (parse().Query)('BatchMemoryRequest').get('doesNotExist', master)).rejects.toMatchObject({ code: 101 });
});

test('an answer that is not Parse JSON rejects as a connection failure naming what came back', async () => {
  const P = parse();
  const serverURL = info.serverURL;
  P.serverURL = `${serverURL.replace(/\/parse$/, '')}/not-parse`;
  try {
    await expect(new P.Query('BatchMemoryRequest').first(master)).rejects.toMatchObject({ code: P.Error.CONNECTION_FAILED });
  } finally {
    P.serverURL = serverURL;
  }
});
