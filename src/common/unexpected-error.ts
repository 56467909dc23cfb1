import { HttpException } from '@nestjs/common';
import { InternalErrorException } from './exceptions';

type Handler = (...args: unknown[]) => unknown;

/**
 * Gives the route's unexpected failures `detail`, the route's own generic message (the real error is
 * only logged), so handlers hold no try/catch. The handler is wrapped in place rather than behind an
 * interceptor: any interceptor puts every request of its controller through Nest's RxJS pipeline,
 * which cost `GET /me` about a fifth of its throughput (BENCHMARKS.md). The metadata other decorators
 * left on the handler before this one moves to the wrapper; those applied after it find the wrapper.
 */
export const OnUnexpectedError =
  (detail: string): MethodDecorator =>
  (_target, _key, descriptor) => {
    const handler = descriptor.value as unknown as Handler;
    const guarded = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
      try {
        return await handler.apply(this, args);
      } catch (error) {
        throw error instanceof HttpException ? error : new InternalErrorException(detail, error);
      }
    };
    for (const key of Reflect.getOwnMetadataKeys(handler)) Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, handler), guarded);
    Object.defineProperty(guarded, 'name', { value: handler.name });
    descriptor.value = guarded as unknown as typeof descriptor.value;
  };
