import { mkdtempSync, rmSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunningApp, startStandalone } from './support/standalone';
import { ADAPTERS, TEST_JWT_SECRET } from './support/test-app';

/**
 * How the standalone server closes a connection while the client is still sending: the answer must
 * reach the client whole. Found by the fuzzer (a large /docs-json cut short as "aborted" under load);
 * here made deterministic by a client that stops reading, so the answer is still in flight, or still
 * unread in the client's kernel buffer, when the bytes that used to reset the connection arrive.
 */
describe.each(ADAPTERS)('closing a connection on %s', (adapter) => {
  let server: RunningApp;
  let workdir: string;
  let port: number;

  beforeAll(async () => {
    workdir = mkdtempSync(join(tmpdir(), 'auth-close-'));
    server = await startStandalone(
      { JWT_SECRET: TEST_JWT_SECRET, HTTP_ADAPTER: adapter, DATABASE_URL: `sqlite://${join(workdir, 'auth.sqlite')}`, LOG_LEVEL: 'silent' },
      workdir,
    );
    port = Number(new URL(server.baseUrl).port);
  });

  afterAll(async () => {
    await server?.stop();
    if (workdir) rmSync(workdir, { recursive: true, force: true });
  });

  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** A raw connection whose reading the test controls; everything received is kept, and how it ended. */
  function rawConnection(allowHalfOpen = false): { socket: Socket; received: () => Buffer; ended: Promise<string> } {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const ended = new Promise<string>((resolve) => {
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      socket.on('close', () => resolve('closed'));
    });
    return { socket, received: () => Buffer.concat(chunks), ended };
  }

  /** Status, headers and body of the one HTTP/1.1 answer in `bytes`. */
  function parseAnswer(bytes: Buffer): { status: number; headers: Record<string, string>; body: Buffer } {
    const split = bytes.indexOf('\r\n\r\n');
    if (split < 0) throw new Error(`no complete head in ${bytes.length} bytes: ${bytes.toString('latin1').slice(0, 200)}`);
    const [statusLine, ...lines] = bytes.subarray(0, split).toString('latin1').split('\r\n');
    const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
    return { status: Number(statusLine.split(' ')[1]), headers, body: bytes.subarray(split + 4) };
  }

  it('finishes a large answer when bytes that are no request follow the GET (a body sent without Content-Length)', async () => {
    const { socket, received, ended } = rawConnection();
    socket.write('GET /docs-json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    // Wait for the answer to start, then stop reading: the rest stays in flight on the server.
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause();
    await pause(200);
    const unframed = '[{"__proto__":{"a":1}}]'.repeat(3_000);
    socket.write(unframed); // parsed as a second request: broken
    await pause(300);
    // More of it after the server gave up on the connection: a reset, unless the server still reads.
    if (socket.writable) socket.write(unframed);
    await pause(300);
    socket.resume();
    expect(await ended).toBe('closed');
    const answer = parseAnswer(received());
    expect(answer.status).toBe(200);
    expect(answer.body.length).toBe(Number(answer.headers['content-length']));
    expect(Object.keys((JSON.parse(answer.body.toString('utf8')) as { paths: object }).paths).length).toBeGreaterThan(10);
  });

  it('lets a client that keeps sending a body too large read the 413 sent before it was read', async () => {
    const { socket, received, ended } = rawConnection();
    socket.write(
      'POST /api/v1/auth/signin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
        'Content-Length: 1000000\r\nConnection: close\r\n\r\n{"email":"' +
        'a'.repeat(32_000),
    );
    // Not reading: the 413 waits in this side's buffer while more of the body goes out.
    socket.pause();
    await pause(300);
    socket.write('a'.repeat(256_000));
    await pause(300);
    socket.resume();
    await ended;
    const answer = parseAnswer(received());
    expect(answer.status).toBe(413);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answer.body.toString('utf8'))).toMatchObject({ status: 413, detail: 'Request body is too large' });
  });

  it('still closes a connection whose client never stops sending, within the linger bound', async () => {
    // Half-open: the client does not end its side when the server's FIN arrives, and goes on sending.
    const { socket, received, ended } = rawConnection(true);
    socket.write('POST /api/v1/auth/signin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n');
    const started = Date.now();
    const feeding = setInterval(() => socket.writable && socket.write('a'.repeat(16_000)), 20);
    try {
      await ended;
    } finally {
      clearInterval(feeding);
    }
    // 2 s of lingering after the 413, with room for a slow machine.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(parseAnswer(received()).status).toBe(413);
  });
});
