/** The response keeps BatchMemoryResponse's (docs/requirements.md §3) field names and types exactly. */
import { addMemoryBatch, memories, newUser } from '../support/helpers';

test('BatchMemoryResponse fields and types match docs/requirements.md', async () => {
  const { sessionToken } = await newUser();
  const response = await addMemoryBatch(sessionToken, { memories: [...memories(3), { content: 'x', metadata: { test_reject: 'refused by processor' } }] });
  expect(Object.keys(response).sort()).toEqual(['batch_id', 'errors', 'failed', 'processed', 'results', 'status', 'success', 'total']);
  expect(response).toEqual({
    success: false,
    batch_id: expect.stringMatching(/^[A-Za-z0-9]{10}$/),
    status: 'completed',
    total: 4,
    processed: 3,
    failed: 1,
    results: [
      { index: 0, success: true, memory_id: expect.any(String) },
      { index: 1, success: true, memory_id: expect.any(String) },
      { index: 2, success: true, memory_id: expect.any(String) },
      { index: 3, success: false, error: 'refused by processor', code: 'rejected' },
    ],
    errors: ['memories[3]: refused by processor'],
  });
});
