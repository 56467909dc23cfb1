import type * as Swagger from '@nestjs/swagger';

/**
 * `@nestjs/swagger`'s decorators when the host has it installed, and decorators that do nothing when it
 * has not: the OpenAPI document is the host's choice (an optional peer), the routes work either way.
 */
function loadSwagger(): typeof Swagger {
  try {
    return require('@nestjs/swagger') as typeof Swagger;
  } catch (error) {
    if ((error as { code?: string }).code !== 'MODULE_NOT_FOUND' || !String(error).includes('@nestjs/swagger')) throw error;
    const decoratorDoingNothing = () => () => undefined;
    return new Proxy({} as typeof Swagger, { get: () => decoratorDoingNothing });
  }
}

export const {
  ApiBearerAuth,
  ApiBody,
  ApiCreatedResponse,
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiProperty,
  ApiPropertyOptional,
  ApiQuery,
  ApiResponse,
  ApiSchema,
  ApiTags,
  getSchemaPath,
} = loadSwagger();
