import { readFileSync } from 'node:fs';
import { createServer, IncomingMessage, request as httpRequest, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';

/**
 * The browser side of the client suite: the machine's Chromium (found by global-setup.mjs; playwright-core
 * downloads no browser), and one origin that serves a test page, the built client module and, behind
 * them, the API, as a reverse proxy in front of an SPA and its API does.
 */

/** The Chromium executable, or undefined when the machine has none (then CHROMIUM_MISSING says so). */
export const CHROMIUM_PATH = process.env.TEST_CHROMIUM_PATH;
export const CHROMIUM_MISSING = process.env.TEST_CHROMIUM_MISSING;

/** The flags that work on these machines: no sandbox as root, no GPU, no calls home (the network is closed). */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Headless Chromium; playwright-core gives each launch a fresh, temporary user data dir. */
export async function launchChromium(): Promise<Browser> {
  if (!CHROMIUM_PATH) throw new Error(`no Chromium: ${CHROMIUM_MISSING}`);
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
}

const CLIENT_JS = join(__dirname, '..', '..', 'dist', 'client', 'index.js');

/**
 * The test page: loads the built client as a browser would (`<script type="module">`), makes a client for
 * this origin (`?mode=cookie|bearer&margin=<seconds>`), records onChange, and calls `restore()` as an SPA
 * does on every load. `?nolocks` hides the Web Locks API first (the control: what happens without it).
 */
const PAGE = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>auth client</title>
<script type="module">
  const params = new URLSearchParams(location.search);
  if (params.has('nolocks')) Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined });
  const { createAuthClient } = await import('/client.js');
  const client = createAuthClient({
    baseUrl: location.origin,
    mode: params.get('mode'),
    refreshMarginSeconds: Number(params.get('margin') ?? 60),
  });
  window.client = client;
  window.changes = [];
  client.onChange((user) => window.changes.push(user ? user.email : null));
  window.restored = await client.restore().then((result) => result && result.user.email);
  window.ready = true;
</script>
</html>
`;

/** One request that reached the API through the page's origin. */
export interface ProxiedRequest {
  method: string;
  path: string;
  /** The refresh token presented to POST /refresh: from the cookie (cookie mode) or the JSON body. */
  refreshToken?: string;
  status?: number;
}

export interface PageOrigin {
  /** `http://127.0.0.1:<port>`: the page at `/`, the client at `/client.js`, the API under it. */
  url: string;
  requests: ProxiedRequest[];
  /** Holds every answer to POST /refresh back this long, so that refreshes from several tabs overlap. */
  refreshDelayMs: number;
  close(): Promise<void>;
}

function refreshTokenOf(request: IncomingMessage, body: Buffer): string | undefined {
  const cookie = /(?:^|;\s*)refresh_token=([^;]*)/.exec(request.headers.cookie ?? '')?.[1];
  if (cookie) return cookie;
  try {
    return (JSON.parse(body.toString('utf8')) as { refresh_token?: string }).refresh_token ?? undefined;
  } catch {
    return undefined;
  }
}

/** Serves the page and the client, and passes every other request to the app at `apiBaseUrl`, recording it. */
export async function startPageOrigin(apiBaseUrl: string): Promise<PageOrigin> {
  const api = new URL(apiBaseUrl);
  const requests: ProxiedRequest[] = [];
  const origin = { refreshDelayMs: 0 };

  const proxy = (request: IncomingMessage, response: ServerResponse, body: Buffer) => {
    const path = request.url ?? '/';
    const entry: ProxiedRequest = { method: request.method ?? 'GET', path: path.split('?')[0] };
    if (entry.method === 'POST' && entry.path.endsWith('/refresh')) entry.refreshToken = refreshTokenOf(request, body);
    requests.push(entry);
    const upstream = httpRequest(
      { host: api.hostname, port: api.port, method: request.method, path, headers: { ...request.headers, host: api.host } },
      (answer) => {
        entry.status = answer.statusCode;
        const delay = entry.path.endsWith('/refresh') ? origin.refreshDelayMs : 0;
        setTimeout(() => {
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
        }, delay);
      },
    );
    upstream.on('error', () => response.writeHead(502).end());
    upstream.end(body);
  };

  const server: Server = createServer((request, response) => {
    if (request.method === 'GET' && (request.url === '/' || request.url?.startsWith('/?'))) {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(PAGE);
      return;
    }
    if (request.method === 'GET' && request.url === '/client.js') {
      response.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' }).end(readFileSync(CLIENT_JS));
      return;
    }
    if (request.url === '/favicon.ico') {
      response.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => proxy(request, response, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(origin, {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
