import { Controller, Get, HttpCode, HttpStatus, Param, Post, Put, UseFilters, UseGuards } from '@nestjs/common';
import { AuthErrors } from '../common/auth.errors';
import { ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '../common/openapi';
import { ProblemDetailsFilter } from '../common/problem-details.filter';
import { AuthThrottlerGuard } from '../rate-limits/auth-throttler.guard';
import { User } from '../users/user.entity';
import { AdminService } from './admin.service';
import { BearerJsonRoute, BearerRoute } from './api-responses';
import { CurrentUser, RequestContext, RequestCtx, RequireAal, Roles } from './decorators';
import { EventFilterQueryDto, EventPageResponse, MAX_PAGE_SIZE, SetRolesDto, UserPageResponse, UserSearchQueryDto } from './dto/admin.dto';
import { SuccessResponse, UserResponse } from './dto/responses.dto';
import { ValidBody } from './validated-body';
import { ValidQuery } from './validated-query';

const ADMIN_ERRORS = { 403: [AuthErrors.INSUFFICIENT_ROLE, AuthErrors.ADDITIONAL_AUTH_REQUIRED] } as const;
const limitQuery = ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 50 } });
const cursorQuery = ApiQuery({ name: 'cursor', required: false, schema: { type: 'string', pattern: '^[1-9][0-9]{0,15}$' }, description: '`next_cursor` of the previous page' });

/**
 * Accounts and the audit log, for users with the `admin` role (at `aal2` when they have a second
 * factor). Every change is an audit event naming the admin (`details.actor_id`).
 */
@ApiTags('Admin')
@Controller('admin')
@UseGuards(AuthThrottlerGuard)
@UseFilters(ProblemDetailsFilter)
@Roles('admin')
@RequireAal('aal2')
export class AdminController {
  constructor(private readonly admin: AdminService) {}

  @Get('users')
  @BearerRoute({ problems: ADMIN_ERRORS, unexpected: AuthErrors.ADMIN_FAILED, query: true })
  @ApiOperation({ summary: 'Users in id order; `query` matches the start of the email or the username' })
  @ApiQuery({ name: 'query', required: false, schema: { type: 'string', maxLength: 254 } })
  @limitQuery
  @cursorQuery
  @ApiOkResponse({ type: UserPageResponse })
  listUsers(@ValidQuery() query: UserSearchQueryDto): Promise<UserPageResponse> {
    return this.admin.listUsers(query);
  }

  @Get('users/:id')
  @BearerRoute({ problems: ADMIN_ERRORS, unexpected: AuthErrors.ADMIN_FAILED })
  @ApiOperation({ summary: 'One user' })
  @ApiOkResponse({ type: UserResponse })
  getUser(@Param('id') id: string): Promise<UserResponse> {
    return this.admin.getUser(id);
  }

  @Post('users/:id/lock')
  @HttpCode(HttpStatus.OK)
  @BearerRoute({ problems: ADMIN_ERRORS, unexpected: AuthErrors.ADMIN_FAILED })
  @ApiOperation({ summary: 'Deactivate the account and end every session: refused on the next request on every instance' })
  @ApiOkResponse({ type: SuccessResponse })
  lock(@CurrentUser() admin: User, @Param('id') id: string, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.admin.lock(admin, id, ctx);
  }

  @Post('users/:id/unlock')
  @HttpCode(HttpStatus.OK)
  @BearerRoute({ problems: ADMIN_ERRORS, unexpected: AuthErrors.ADMIN_FAILED })
  @ApiOperation({ summary: 'Activate the account again (its sessions stay ended)' })
  @ApiOkResponse({ type: SuccessResponse })
  unlock(@CurrentUser() admin: User, @Param('id') id: string, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.admin.unlock(admin, id, ctx);
  }

  @Post('users/:id/signout-all')
  @HttpCode(HttpStatus.OK)
  @BearerRoute({ problems: ADMIN_ERRORS, unexpected: AuthErrors.ADMIN_FAILED })
  @ApiOperation({ summary: "End every session of the user: their tokens are refused on the next request on every instance" })
  @ApiOkResponse({ type: SuccessResponse })
  signOutAll(@CurrentUser() admin: User, @Param('id') id: string, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.admin.signOutAll(admin, id, ctx);
  }

  @Put('users/:id/roles')
  @BearerJsonRoute({ problems: ADMIN_ERRORS, unexpected: AuthErrors.ADMIN_FAILED })
  @ApiOperation({ summary: "Replace the user's roles; takes effect on the user's next request on every instance" })
  @ApiOkResponse({ type: UserResponse })
  setRoles(
    @CurrentUser() admin: User,
    @Param('id') id: string,
    @ValidBody() dto: SetRolesDto,
    @RequestCtx() ctx: RequestContext,
  ): Promise<UserResponse> {
    return this.admin.setRoles(admin, id, dto.roles, ctx);
  }

  @Get('events')
  @BearerRoute({ problems: ADMIN_ERRORS, unexpected: AuthErrors.EVENTS_FAILED, query: true })
  @ApiOperation({ summary: 'Audit events, newest first, filtered by user, type and time (`from` inclusive, `to` exclusive)' })
  @ApiQuery({ name: 'user_id', required: false, schema: { type: 'integer', minimum: 1 } })
  @ApiQuery({ name: 'type', required: false, schema: { type: 'string', pattern: '^[a-z_]{1,40}$' } })
  @ApiQuery({ name: 'from', required: false, schema: { type: 'string', format: 'date-time' } })
  @ApiQuery({ name: 'to', required: false, schema: { type: 'string', format: 'date-time' } })
  @limitQuery
  @cursorQuery
  @ApiOkResponse({ type: EventPageResponse })
  events(@ValidQuery() query: EventFilterQueryDto): Promise<EventPageResponse> {
    return this.admin.events(query);
  }
}
