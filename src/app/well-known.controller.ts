import { Controller, Get, Header, NotFoundException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiResponse, ApiTags, getSchemaPath } from '@nestjs/swagger';
import { AuthErrors, JwksResponse, Public, SigningKeys } from '..';

/** `/.well-known/jwks.json`: where verifiers look for the keys first (the module serves the same at `{prefix}/jwks`). */
@ApiTags('Authentication')
@Public()
@Controller('.well-known')
export class WellKnownController {
  constructor(private readonly signingKeys: SigningKeys) {}

  @Get('jwks.json')
  @Header('Cache-Control', 'public, max-age=300')
  @ApiOperation({ summary: 'The public keys access tokens are signed with (JWKS); 404 when they are signed with HS256', security: [] })
  @ApiOkResponse({ type: JwksResponse })
  @ApiResponse({
    status: 404,
    description: 'Tokens are signed with HS256',
    content: {
      'application/problem+json': {
        schema: { $ref: getSchemaPath('ProblemDetails') },
        example: { type: 'about:blank', title: 'Not Found', status: 404, detail: AuthErrors.NO_PUBLIC_KEYS },
      },
    },
  })
  jwks(): JwksResponse {
    if (!this.signingKeys.publishesKeys) throw new NotFoundException(AuthErrors.NO_PUBLIC_KEYS);
    return this.signingKeys.jwks();
  }
}
