/* global Parse */
/** This app's own Cloud Code. */
Parse.Cloud.define('hello', (request) => `hello ${request.user ? request.user.get('nickname') : 'stranger'}`);

Parse.Cloud.beforeSave('Note', (request) => {
  if (request.user) request.object.set('author', request.user);
});
