/**
 * Parse Server's /batch endpoint, which Parse.Object.saveAll uses. router@2.3.0 breaks it
 * (error 111); package.json pins router to 2.2.0. When this passes without the pin, drop it.
 */
import { master, parse } from '../support/helpers';

test('Parse.Object.saveAll of 100 objects succeeds through /batch', async () => {
  const P = parse();
  const objects = Array.from({ length: 100 }, (_, i) => {
    const object = new P.Object('RouterPinProbe');
    object.set({ i });
    return object;
  });
  const saved = await P.Object.saveAll(objects, master);
  expect(saved.every((o) => typeof o.id === 'string')).toBe(true);
  const found = await new P.Query('RouterPinProbe')
    .containedIn(
      'objectId',
      saved.map((o) => o.id as string),
    )
    .limit(1000)
    .find(master);
  expect(found.map((o) => o.get('i')).sort((a, b) => a - b)).toEqual([...Array(100).keys()]);
});
