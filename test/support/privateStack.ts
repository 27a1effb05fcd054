/**
 * A private test stack that one test file may break (stop Temporal, kill the worker, restart Parse
 * Server). It runs in a child process of its own, driven over IPC: the stack's ES-module parts
 * cannot load inside jest's module system, and its processes then outlive nothing but this child.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT, type StackProcess } from '../../scripts/stack';
import type { TestStackInfo } from './stackInfo';
import { type ClusterShape, bootTestStack } from './testStack';

type CommandBody = { op: 'start' | 'stop'; name: StackProcess; signal?: NodeJS.Signals } | { op: 'shutdown' };
type Command = CommandBody & { id: number };
type Reply = { id: number; pid?: number; error?: string };
type Ready = { ready: TestStackInfo } | { failed: string };

export interface PrivateStack {
  info: TestStackInfo;
  /** (Re)starts a process and resolves once it serves; answers its pid. */
  start(name: StackProcess): Promise<number>;
  stop(name: StackProcess, signal?: NodeJS.Signals): Promise<void>;
  shutdown(): Promise<void>;
}

export async function startPrivateStack(name: string, overrides: NodeJS.ProcessEnv = {}, shape: ClusterShape = {}): Promise<PrivateStack> {
  const child: ChildProcess = fork(path.join(PROJECT_ROOT, 'dist/test/support/privateStack.js'), [name, JSON.stringify(overrides), JSON.stringify(shape)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const info = await new Promise<TestStackInfo>((resolve, reject) => {
    child.once('message', (message: Ready) => ('ready' in message ? resolve(message.ready) : reject(new Error(message.failed))));
    child.once('exit', (code) => reject(new Error(`the private stack exited with code ${code}`)));
  });
  let nextId = 0;
  const pending = new Map<number, { resolve: (reply: Reply) => void }>();
  child.on('message', (reply: Reply) => pending.get(reply.id)?.resolve(reply));
  const send = (command: CommandBody) =>
    new Promise<Reply>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, { resolve });
      child.send({ ...command, id }, (error) => error && reject(error));
    }).then((reply) => {
      pending.delete(reply.id);
      if (reply.error) throw new Error(reply.error);
      return reply;
    });
  return {
    info,
    start: async (process) => (await send({ op: 'start', name: process })).pid as number,
    stop: async (process, signal) => {
      await send({ op: 'stop', name: process, signal });
    },
    shutdown: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await send({ op: 'shutdown' }).catch(() => undefined);
      await exited;
    },
  };
}

async function serve(name: string, overrides: NodeJS.ProcessEnv, shape: ClusterShape): Promise<void> {
  const send = (message: Ready | Reply) => process.send?.(message);
  let booted;
  // Several stacks boot at once when a run starts: one that failed (a port taken between choosing and
  // binding it) boots once more, on fresh ports.
  for (let attempt = 1; !booted; attempt++) {
    try {
      booted = await bootTestStack(name, overrides, shape);
    } catch (error) {
      if (attempt === 1) {
        process.stderr.write(`private stack ${name} failed to boot; booting it again: ${(error as Error).message}\n`);
        continue;
      }
      send({ failed: (error as Error).stack ?? String(error) });
      process.exit(1);
    }
  }
  const { stack, info } = booted;
  process.on('disconnect', () => void stack.stop().finally(() => process.exit(0)));
  process.on('message', (command: Command) => {
    void (async (): Promise<Reply> => {
      if (command.op === 'shutdown') {
        await stack.stop();
        send({ id: command.id });
        process.exit(0);
      }
      if (command.op === 'stop') {
        await stack.stopProcess(command.name, command.signal);
        return { id: command.id };
      }
      return { id: command.id, pid: (await stack.startProcess(command.name)).pid };
    })()
      .catch((error: Error): Reply => ({ id: command.id, error: error.message }))
      .then(send);
  });
  send({ ready: info });
}

if (require.main === module) void serve(process.argv[2], JSON.parse(process.argv[3] ?? '{}'), JSON.parse(process.argv[4] ?? '{}'));
