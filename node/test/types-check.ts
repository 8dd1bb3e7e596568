// Compiled by `tsc -p node` (make lint) and never run: the declarations in
// index.d.ts must accept what the README shows and refuse what is wrong.
import IPCClient = require('..');
import { IPCClient as Named, IPCError, ErrorCode } from '..';

declare function log(...values: unknown[]): void;

const logger: IPCClient.Logger = {
  debug: (level: number, msg: string) => void [level, msg],
  error: (code: string, msg: string) => void [code, msg],
};
const client = new IPCClient('/run/app.sock', logger, {
  requestTimeout: 5000,
  autoReconnect: 0,
  codeToErr: true,
  messageTransform: (msg) => [msg.code ? msg : null, msg.data],
  maxMessageBytes: 16 * 1024 * 1024,
});
const named: IPCClient = new Named('/run/app.sock');
const plain = new IPCClient('/run/app.sock');

client.connect((err) => {
  if (err) log(err.code);
  client.send('/myapp/status', { verbose: true }, (err2, data) => log(err2, data));
  client.send('/myapp/ping', (err3: unknown) => log(err3));
});

async function main(): Promise<void> {
  await plain.connect();
  const status = await plain.send<{ uptime: number }>('/myapp/status', {});
  const uptime: number = status.uptime;
  const pending: number = plain.pendingCount;
  const timeout: number = plain.options.requestTimeout;
  plain.on('data', (message) => log(message.data));
  plain.on('disconnect', (error) => log(error.code === ErrorCode.SERVER_CLOSED));
  try {
    await plain.send('/x');
  } catch (err) {
    if (err instanceof IPCError && err.code === 'request_timeout') log(err.timeout);
  }
  log(uptime, pending, timeout, named.connected, plain.getStats().responses);
  await plain.close();
}
void main();

// @ts-expect-error: the socket path is a string
new IPCClient(42);
// @ts-expect-error: times are numbers of ms
new IPCClient('/x', null, { requestTimeout: '10s' });
// @ts-expect-error: no such event
plain.on('message', () => undefined);
