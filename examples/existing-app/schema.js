/** This app's own classes, with their own permissions; `_User` has a field of its own. */
module.exports = [
  {
    className: '_User',
    fields: { nickname: { type: 'String' } },
    // Signed-in users may list users (to find each other by nickname).
    classLevelPermissions: { find: { requiresAuthentication: true }, count: { requiresAuthentication: true } },
  },
  {
    className: 'Note',
    fields: { text: { type: 'String', required: true }, author: { type: 'Pointer', targetClass: '_User' } },
    // Signed-in users read and write notes; only the master key deletes them.
    classLevelPermissions: {
      find: { requiresAuthentication: true },
      get: { requiresAuthentication: true },
      count: { requiresAuthentication: true },
      create: { requiresAuthentication: true },
      update: { requiresAuthentication: true },
      delete: {},
      addField: {},
    },
  },
];
