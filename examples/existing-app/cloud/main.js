/* global Parse */
/**
 * This app's own Cloud Code, with triggers on classes the batch memory plugin guards too (_User, files, its
 * BatchMemoryRequest and Memory classes): Parse Server keeps one handler per class and event, and the plugin
 * composes its own with these, so both run.
 */
const seen = { fileReads: 0, batchSaves: [], memorySaves: 0 };

Parse.Cloud.define('hello', (request) => `hello ${request.user ? request.user.get('nickname') : 'stranger'}`);

Parse.Cloud.beforeSave('Note', (request) => {
  if (request.user) request.object.set('author', request.user);
});

Parse.Cloud.beforeSave(Parse.User, (request) => {
  const nickname = request.object.get('nickname');
  if (typeof nickname === 'string') request.object.set('nickname', nickname.trim());
});

Parse.Cloud.beforeFind(Parse.File, () => {
  seen.fileReads += 1;
});

Parse.Cloud.afterSave('BatchMemoryRequest', (request) => {
  if (!seen.batchSaves.includes(request.object.id)) seen.batchSaves.push(request.object.id);
});

Parse.Cloud.beforeSave('Memory', () => {
  seen.memorySaves += 1;
});

Parse.Cloud.define('triggersSeen', () => seen, { requireMaster: true });
