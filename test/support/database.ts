/** The database a run uses: TEST_DATABASE=mongo runs the suite on MongoDB, otherwise it runs on PostgreSQL. */
export const onMongo = process.env.TEST_DATABASE === 'mongo';

/**
 * A test that needs PostgreSQL by nature (its own SQL, a PostgreSQL fault): its name says so, and the
 * MongoDB run leaves it out, which the runner lists by name.
 */
export function postgresOnlyTest(name: string, fn: jest.ProvidesCallback, timeout?: number): void {
  (onMongo ? test.skip : test)(`${name} [postgres only]`, fn, timeout);
}
