import { request } from 'node:http';

export interface RawRequest {
  method: string;
  /** Sent as is: whatever node:http lets through (U+0021 to U+00FF), percent-encoded or not. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  ms: number;
}

/** A JSON request as a well-behaved client sends it; a string body is sent as it is. */
export function jsonRequest(method: string, path: string, body: string | object, bearer?: string): RawRequest {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  return { method, path, headers, body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)) };
}

/**
 * One request over its own connection, with none of the normalisation a client library applies, so a
 * test can send malformed paths, odd headers and bodies of any bytes. Rejects if no answer comes within
 * `timeoutMs` (a hang is a failure, not a slow pass).
 */
export function sendRaw(baseUrl: string, raw: RawRequest, timeoutMs: number): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request({ hostname, port, method: raw.method, path: raw.path, headers: raw.headers, agent: false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    // A server may answer (413) and close before it has read the whole body; the answer is what counts.
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    req.end(raw.body);
  });
}
