import { stackInfo } from './stackInfo';

/** The database a run uses: TEST_DATABASE=mongo runs the suite on MongoDB, otherwise it runs on PostgreSQL. */
export const onMongo = process.env.TEST_DATABASE === 'mongo';

/**
 * A test that needs PostgreSQL by nature (its own SQL, a PostgreSQL fault): its name says so, and the
 * MongoDB run leaves it out, which the runner lists by name.
 */
export function postgresOnlyTest(name: string, fn: jest.ProvidesCallback, timeout?: number): void {
  (onMongo ? test.skip : test)(`${name} [postgres only]`, fn, timeout);
}

/** The MongoDB run's counterpart of a `postgresOnlyTest`: the same behaviour, planted with MongoDB's own means. */
export function mongoOnlyTest(name: string, fn: jest.ProvidesCallback, timeout?: number): void {
  (onMongo ? test : test.skip)(`${name} [mongodb only]`, fn, timeout);
}

/** The MongoDB run on FerretDB (where no mongod is installed). */
function onFerretDB(): boolean {
  return onMongo && stackInfo().env.DATABASE_FERRETDB === 'true';
}

/**
 * A test of what the plugin's FerretDB adapter does (PostgreSQL and mongod do it themselves, so there it could not
 * fail): the other runs leave it out, which the runner lists by name.
 */
export function ferretDBOnlyTest(name: string, fn: jest.ProvidesCallback, timeout?: number): void {
  (onFerretDB() ? test : test.skip)(`${name} [FerretDB only]`, fn, timeout);
}

/**
 * A test that holds two writes of one row at the database at once. On FerretDB the plugin's adapter makes one
 * Parse Server's updates of a class take turns (FerretDB 1.x would lose one of two at once), so the second never
 * reaches the database while the first is held: the FerretDB run leaves the test out, which the runner lists by name.
 */
export function writesHeldTogetherTest(name: string, fn: jest.ProvidesCallback, timeout?: number): void {
  (onFerretDB() ? test.skip : test)(`${name} [not on FerretDB, whose updates take turns]`, fn, timeout);
}
