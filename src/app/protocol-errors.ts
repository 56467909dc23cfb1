import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

function problemJson(status: number, detail: string): string {
  return JSON.stringify({ type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail });
}

const CLIENT_ERRORS: Record<number, string> = {
  400: 'Malformed HTTP request',
  408: 'Request timed out',
  431: 'Request headers are too large',
};

/** Sockets whose answer in flight is being finished before they close. */
const closingAfterAnswer = new WeakSet<Socket>();

/** What Node keeps on a socket: the response being written on it, if any. */
type HttpSocket = Socket & { _httpMessage?: ServerResponse | null };

/**
 * Node's HTTP parser refuses some requests before any framework sees them: a raw byte above 0x7F in the
 * request line, a header over 16 KiB, a broken header line. Node answers those with a bodiless 400 and
 * Fastify with JSON of its own; this answers them as problem details like every other error.
 *
 * The refused bytes may also follow a request that is being answered: a client that sends a body
 * on a GET without a Content-Length, whose bytes then parse as a second, broken request. Destroying
 * the connection there, as Node does, cuts the first answer short (seen as "aborted" on a large
 * /docs-json). So an answer in flight is finished first, and the connection closes after it
 * without a word about the broken bytes. Nothing is written after an answer either (it may have said
 * `Connection: close`); a broken request that is the first on its connection gets problem details.
 * Either way the connection closes lingering (lingering-close.ts), so the client can read the answer.
 */
export function answerClientError(error: Error & { code?: string }, socket: HttpSocket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const inFlight = socket._httpMessage;
  if (inFlight && !inFlight.writableFinished) {
    // Bytes that follow a parse error fail again, each with its own clientError: wait once.
    if (closingAfterAnswer.has(socket)) return;
    closingAfterAnswer.add(socket);
    inFlight.shouldKeepAlive = false; // Connection: close, if its head is not written yet
    inFlight.once('finish', () => socket.destroySoon());
    inFlight.once('close', () => socket.destroySoon());
    return;
  }
  if (socket.writable && socket.bytesWritten === 0) {
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = problemJson(status, CLIENT_ERRORS[status]);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\nCache-Control: no-store\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroySoon();
}

/**
 * Express: a body declared larger than `limit` is refused at once. body-parser would read the whole of
 * it first (100 MB at whatever pace the client likes) and only then answer 413; Fastify answers before
 * reading, and so does this. The connection then closes lingering, so the client reads the answer.
 */
export function refuseDeclaredOversize(limit: number) {
  const body = problemJson(413, 'Request body is too large');
  return (request: IncomingMessage, response: ServerResponse, next: () => void): void => {
    if (!(Number(request.headers['content-length']) > limit)) return next();
    response.writeHead(413, {
      'Content-Type': 'application/problem+json',
      'Cache-Control': 'no-store',
      'Content-Length': Buffer.byteLength(body),
      Connection: 'close',
    });
    response.end(body);
  };
}
