import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import { ApiBody } from '../common/openapi';
import { createValidationPipe } from '../common/validation.pipe';

const RequestBody = createParamDecorator(
  (_data: unknown, context: ExecutionContext) => context.switchToHttp().getRequest<{ body?: unknown }>().body,
);

const bodyPipe = createValidationPipe();

/**
 * The request body, validated against the parameter's DTO class by the module's own pipe (422 with
 * `errors`). Not `@Body()`: a host's global `ValidationPipe` runs before any pipe of ours on `@Body()`
 * parameters and would answer with its own 400, while it leaves custom parameter decorators alone.
 * Also documents the body, which Swagger cannot see through a custom decorator.
 */
export function ValidBody(): ParameterDecorator {
  return (target, key, index) => {
    RequestBody(undefined, bodyPipe)(target, key, index);
    const type = (Reflect.getMetadata('design:paramtypes', target, key!) as unknown[])[index] as new () => object;
    ApiBody({ type })(target, key!, Object.getOwnPropertyDescriptor(target, key!)!);
  };
}
