import { randomUUID } from 'node:crypto';

const REQUEST_ID = Symbol('requestId');

type WithRequestId = { [REQUEST_ID]?: string };

/**
 * The id that ties a request's log lines and its error response together. Assigned on first use, so it
 * works the same under Express and Fastify and in host apps that add no middleware. Fastify's request
 * wraps Node's (`raw`), which is what middleware such as a request logger sees: the id is kept on Node's,
 * so both give the same one.
 */
export function requestIdOf(request: object): string {
  const raw = (request as { raw?: unknown }).raw;
  const holder = (typeof raw === 'object' && raw !== null ? raw : request) as WithRequestId;
  holder[REQUEST_ID] ??= randomUUID();
  return holder[REQUEST_ID];
}
