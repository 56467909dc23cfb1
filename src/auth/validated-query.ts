import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import { createValidationPipe } from '../common/validation.pipe';

const QueryObject = createParamDecorator((_data: unknown, context: ExecutionContext) => {
  const query = context.switchToHttp().getRequest<{ query?: unknown }>().query;
  // Fastify and Express both give an object; a repeated parameter (`?limit=1&limit=2`) is an array, which the DTO refuses.
  return typeof query === 'object' && query !== null ? { ...query } : {};
});

const queryPipe = createValidationPipe();

/**
 * The query string, validated against the parameter's DTO class by the module's own pipe (422 with
 * `errors`), out of reach of a host's global `ValidationPipe`, as `ValidBody` is for bodies.
 */
export function ValidQuery(): ParameterDecorator {
  return (target, key, index) => QueryObject(undefined, queryPipe)(target, key, index);
}
