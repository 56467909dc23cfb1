import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

function problemJson(status: number, detail: string): string {
  return JSON.stringify({ type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail });
}

const CLIENT_ERRORS: Record<number, string> = {
  400: 'Malformed HTTP request',
  408: 'Request timed out',
  431: 'Request headers are too large',
};

/**
 * Node's HTTP parser refuses some requests before any framework sees them: a raw byte above 0x7F in the
 * request line, a header over 16 KiB, a broken header line. Node answers those with a bodiless 400 and
 * Fastify with JSON of its own; this answers them as problem details like every other error. As Node
 * does, nothing is written once a response has started on the connection, and the connection is closed.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable && socket.bytesWritten === 0) {
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = problemJson(status, CLIENT_ERRORS[status]);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\nCache-Control: no-store\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
