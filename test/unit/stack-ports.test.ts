/**
 * `npm run cluster` as the README runs it, with no port in the environment: each of its workers serves its
 * metrics on a port of its own (the second one bound 9464 as well, crash-looped, and stopped the stack).
 */
import { loadConfig } from '../../config';
import { localStackEnv, workerMetricsPort } from '../../scripts/stack';

test('with no WORKER_METRICS_PORT in the environment, the workers of a cluster get 9464 and the ports after it', () => {
  const config = loadConfig(localStackEnv({ PATH: process.env.PATH }));
  expect([0, 1, 2].map((index) => workerMetricsPort(config, index))).toEqual([9464, 9465, 9466]);
});

test('a WORKER_METRICS_PORT the operator sets is the first worker port; 0 turns metrics off for every worker', () => {
  expect([0, 1].map((index) => workerMetricsPort(loadConfig(localStackEnv({ WORKER_METRICS_PORT: '19000' })), index))).toEqual([19000, 19001]);
  expect([0, 1].map((index) => workerMetricsPort(loadConfig(localStackEnv({ WORKER_METRICS_PORT: '0' })), index))).toEqual([undefined, undefined]);
});
