/**
 * The MCP SDK's own client against the shared test stack, over stdio (the built `memory-batch mcp` as a
 * subprocess, in a folder of the test's own: the one it reads files from) or Streamable HTTP at /mcp.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CLI, SERVER } from '../client/cliProcess';
import { stackInfo } from './stackInfo';

export type Transport = 'stdio' | 'http';
export const TRANSPORTS: Transport[] = ['stdio', 'http'];
export const MCP_URL = `${SERVER}/mcp`;
/** Long enough for a batch of 1,000 on a loaded machine; progress notifications reset it. */
export const CALL = { timeout: 120_000, resetTimeoutOnProgress: true, maxTotalTimeout: 600_000 };

export interface ToolAnswer {
  isError?: boolean;
  structuredContent?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  content: { type: string; text?: string }[];
}

export async function call(client: Client, name: string, args: Record<string, unknown>, options: Parameters<Client['callTool']>[2] = CALL): Promise<ToolAnswer> {
  return (await client.callTool({ name, arguments: args }, undefined, options)) as ToolAnswer;
}

export const textContent = (content: { text: string } | { blob: string }) => ('text' in content ? content.text : '');
export const textOf = (answer: ToolAnswer) => answer.content.map((part) => part.text ?? '').join('');

/** The environment of a stdio server: the stack's app id and URL, and coverage when the run collects it. */
function stdioEnv(credentials: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    PARSE_APP_ID: stackInfo().appId,
    MEMORY_BATCH_SERVER: SERVER,
    ...credentials,
    ...(process.env.COVERAGE_DIR ? { NODE_V8_COVERAGE: process.env.COVERAGE_DIR } : {}),
  };
}

/** The clients of one test file, and the folder its stdio servers run in; `close` ends them all. */
export class McpClients {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-batch-mcp-'));
  private readonly clients: Client[] = [];

  /** A client as the user of `sessionToken`; a stdio server gets `args` added. */
  async connect(transport: Transport, sessionToken: string, args: string[] = []): Promise<Client> {
    if (transport === 'stdio') return this.connectStdio({ MEMORY_BATCH_SESSION_TOKEN: sessionToken }, args);
    return this.track(new StreamableHTTPClientTransport(new URL(MCP_URL), { requestInit: { headers: { Authorization: `Bearer ${sessionToken}` } } }));
  }

  /** A stdio client with its own credentials and arguments (the master key, say). */
  async connectStdio(credentials: Record<string, string>, args: string[]): Promise<Client> {
    return this.track(new StdioClientTransport({ command: process.execPath, args: [CLI, 'mcp', ...args], cwd: this.dir, env: stdioEnv(credentials), stderr: 'inherit' }));
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.close()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private async track(transport: StdioClientTransport | StreamableHTTPClientTransport): Promise<Client> {
    const client = new Client({ name: 'mcp-test', version: '1.0.0' });
    await client.connect(transport);
    this.clients.push(client);
    return client;
  }
}
