import { createParamDecorator, ExecutionContext, HttpException, HttpStatus } from '@nestjs/common';
import { ApiBody } from '../common/openapi';
import { PARSER_ERRORS } from '../common/problem-details.filter';
import { createValidationPipe } from '../common/validation.pipe';

interface BodyRequest {
  body?: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** Whether the request carries a body at all: a declared length above zero, or a chunked one. */
function hasBody(request: BodyRequest): boolean {
  const declared = Number(request.headers['content-length']);
  return (Number.isFinite(declared) && declared > 0) || request.headers['transfer-encoding'] !== undefined;
}

function isJson(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.split(';', 1)[0].trim().toLowerCase() === 'application/json';
}

/**
 * A body that is not `application/json` is refused, whatever parsers the adapter or the host app
 * registered. Forms (urlencoded, multipart) and `text/plain` are what a page of another site can post
 * without a CORS preflight: were they read, a cross-site form could sign a browser into an attacker's
 * account (cookie mode) or sign one up.
 */
const RequestBody = createParamDecorator((_data: unknown, context: ExecutionContext) => {
  const request = context.switchToHttp().getRequest<BodyRequest>();
  if (hasBody(request) && !isJson(request.headers['content-type'])) {
    throw new HttpException(PARSER_ERRORS[415], HttpStatus.UNSUPPORTED_MEDIA_TYPE);
  }
  return request.body;
});

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
