import { ApiProperty } from '@nestjs/swagger';
import type { User } from '../../users/user.entity';

export class UserResponse {
  @ApiProperty({ example: 1 })
  id: number;

  @ApiProperty({ example: 'ada@example.com' })
  email: string;

  @ApiProperty({ example: 'ada' })
  username: string;

  @ApiProperty({ example: 'Ada Lovelace', nullable: true, type: String })
  full_name: string | null;

  @ApiProperty({ example: true })
  is_active: boolean;

  @ApiProperty({ example: false, description: 'Whether the owner has confirmed the email address' })
  is_verified: boolean;

  @ApiProperty({ example: '2026-11-25T14:51:26.000Z', format: 'date-time' })
  created_at: string;

  /** The public view of a user: an explicit allow-list, so a new column never leaks by default. */
  static from(user: User): UserResponse {
    return {
      id: user.id,
      email: user.email,
      username: user.username,
      full_name: user.fullName,
      is_active: user.isActive,
      is_verified: user.isVerified,
      created_at: user.createdAt.toISOString(),
    };
  }
}

export class TokenResponse {
  @ApiProperty({ description: 'JWT access token (HS256)' })
  access_token: string;

  @ApiProperty({ example: 'bearer', enum: ['bearer'] })
  token_type: 'bearer';

  @ApiProperty({ example: 1800, description: 'Seconds until the access token expires' })
  expires_in: number;

  @ApiProperty({ type: UserResponse })
  user: UserResponse;
}

export class SuccessResponse {
  @ApiProperty({ example: 'Password changed successfully' })
  message: string;
}

export class FieldErrorResponse {
  @ApiProperty({ example: 'email' })
  field: string;

  @ApiProperty({ example: 'email must be a valid email address' })
  message: string;
}

export class ProblemResponse {
  @ApiProperty({ example: 'about:blank' })
  type: string;

  @ApiProperty({ example: 'Bad Request' })
  title: string;

  @ApiProperty({ example: 400 })
  status: number;

  @ApiProperty({ example: 'Email already registered' })
  detail: string;

  @ApiProperty({ type: [FieldErrorResponse], required: false, description: 'Present on 422 only' })
  errors?: FieldErrorResponse[];

  @ApiProperty({ required: false, description: 'Present on 5xx: quote it when reporting the problem' })
  request_id?: string;
}
