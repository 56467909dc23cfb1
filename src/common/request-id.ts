import { randomUUID } from 'node:crypto';

const REQUEST_ID = Symbol('requestId');

type WithRequestId = { [REQUEST_ID]?: string };

/**
 * The id that ties a request's log lines and its error response together. Assigned on first use, so it
 * works the same under Express and Fastify and in host apps that add no middleware.
 */
export function requestIdOf(request: object): string {
  const holder = request as WithRequestId;
  holder[REQUEST_ID] ??= randomUUID();
  return holder[REQUEST_ID];
}
