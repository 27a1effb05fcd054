/**
 * Which mongod the MongoDB run (TEST_DATABASE=mongo) starts, and the FerretDB wrapper as
 * mongodb-memory-server sees it.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { mongodChoice } from '../../scripts/mongod';
import { PROJECT_ROOT } from '../../scripts/stack';

const wrapper = path.join(PROJECT_ROOT, 'scripts/mongod-ferretdb');

test('MONGOMS_SYSTEM_BINARY wins, then a mongod on PATH, then the FerretDB build, then the download', () => {
  expect(mongodChoice({ MONGOMS_SYSTEM_BINARY: '/opt/mongod' }, '/usr/bin/mongod', '/cache/ferretdb')).toEqual({ env: {}, description: 'mongod /opt/mongod (MONGOMS_SYSTEM_BINARY)' });
  expect(mongodChoice({}, '/usr/bin/mongod', '/cache/ferretdb').env).toEqual({ MONGOMS_SYSTEM_BINARY: '/usr/bin/mongod' });
  expect(mongodChoice({}, undefined, '/cache/ferretdb').env).toEqual({ MONGOMS_SYSTEM_BINARY: wrapper, MONGOMS_VERSION: '7.0.42', FERRETDB_BINARY: '/cache/ferretdb' });
  expect(mongodChoice({}, undefined, undefined)).toEqual({ env: {}, description: expect.stringContaining("mongodb-memory-server's downloaded mongod") });
});

test('the wrapper answers --version as mongod does, and refuses what FerretDB cannot play (a replica set, auth)', () => {
  const version = spawnSync(wrapper, ['--version'], { encoding: 'utf8' });
  expect(version.status).toBe(0);
  expect(version.stdout).toMatch(/^db version v7\.0\.42$/m);
  for (const option of ['--replSet', '--auth']) {
    const refused = spawnSync(wrapper, ['--port', '1', '--dbpath', '/nonexistent', option, 'x'], { encoding: 'utf8', env: { ...process.env, FERRETDB_BINARY: '/bin/false' } });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain(`option ${option} is not supported`);
  }
});
