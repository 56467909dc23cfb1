import { ApiProperty } from '../../common/openapi';
import { ArrayMaxSize, IsArray, IsISO8601, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import type { AuthEvent, AuthEventDetails } from '../../audit/auth-event.entity';
import { UserResponse } from './responses.dto';

/** Role names: short, lower case, no commas (they are stored comma-separated). */
export const ROLE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
export const MAX_ROLES = 20;
export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 50;

const LIMIT = /^(?:[1-9]|[1-9][0-9]|100)$/;
const CURSOR = /^[1-9][0-9]{0,15}$/;

/** `?limit=&cursor=`: query values arrive as strings and are checked as such. */
export class PageQueryDto {
  @IsOptional()
  @Matches(LIMIT, { message: `limit must be an integer from 1 to ${MAX_PAGE_SIZE}` })
  limit?: string;

  @IsOptional()
  @Matches(CURSOR, { message: 'cursor must be a next_cursor of an earlier page' })
  cursor?: string;
}

export class UserSearchQueryDto extends PageQueryDto {
  @IsOptional()
  @IsString()
  @MaxLength(254)
  query?: string;
}

export class EventFilterQueryDto extends PageQueryDto {
  @IsOptional()
  @Matches(/^[1-9][0-9]{0,9}$/, { message: 'user_id must be a user id' })
  user_id?: string;

  @IsOptional()
  @Matches(/^[a-z_]{1,40}$/, { message: 'type must be an event type such as signin_failed' })
  type?: string;

  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'from must be an ISO 8601 date-time' })
  from?: string;

  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'to must be an ISO 8601 date-time' })
  to?: string;
}

export class SetRolesDto {
  @ApiProperty({ type: [String], example: ['admin'], maxItems: MAX_ROLES, description: 'The complete new set of roles' })
  @IsArray()
  @ArrayMaxSize(MAX_ROLES)
  @IsString({ each: true })
  @Matches(ROLE_PATTERN, { each: true, message: 'each role must be 1 to 32 lower-case letters, digits, _ or -, starting with a letter' })
  roles: string[];
}

export class AuthEventResponse {
  @ApiProperty({ example: 1042, type: 'integer' })
  id: number;

  @ApiProperty({ example: 'signin', description: 'signup, signin, signin_failed, signout, session_revoked, refresh_reused, password_changed, …' })
  type: string;

  @ApiProperty({ example: 7, type: 'integer', nullable: true, description: 'Null for a failed sign-in with an unknown email' })
  user_id: number | null;

  @ApiProperty({ example: '8f14e45f-ceea-467f-a0e6-2b1e5c3a9d4b', type: String, nullable: true })
  session_id: string | null;

  @ApiProperty({ example: '203.0.113.7', type: String, nullable: true, description: 'Client address after the trusted-proxy rules' })
  ip: string | null;

  @ApiProperty({ example: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/142.0', type: String, nullable: true })
  user_agent: string | null;

  @ApiProperty({ example: '2026-11-25T14:51:26.000Z', format: 'date-time' })
  created_at: string;

  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    nullable: true,
    example: { amr: ['pwd'] },
    description: 'What else the event says (a reason, the roles changed, the acting admin); never a secret',
  })
  details: AuthEventDetails | null;

  static from(event: AuthEvent): AuthEventResponse {
    return {
      id: Number(event.id),
      type: event.type,
      user_id: event.userId,
      session_id: event.sessionId,
      ip: event.ip,
      user_agent: event.userAgent,
      created_at: event.createdAt.toISOString(),
      details: event.details,
    };
  }
}

export class EventPageResponse {
  @ApiProperty({ type: [AuthEventResponse], description: 'Newest first' })
  items: AuthEventResponse[];

  @ApiProperty({ type: String, nullable: true, example: '1001', description: 'Pass as `cursor` for the next page; null on the last' })
  next_cursor: string | null;
}

export class UserPageResponse {
  @ApiProperty({ type: [UserResponse], description: 'In id order' })
  items: UserResponse[];

  @ApiProperty({ type: String, nullable: true, example: '51', description: 'Pass as `cursor` for the next page; null on the last' })
  next_cursor: string | null;
}
