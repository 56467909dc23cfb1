import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { QueryFailedError, Repository } from 'typeorm';
import { UserChanges } from './user-changes';
import { User } from './user.entity';

export interface NewUser {
  email: string;
  username: string;
  fullName: string | null;
  hashedPassword: string;
}

/** Which unique value a sign-up collided with. */
export type TakenField = 'email' | 'username';

/** Thrown by `UsersService.create` when the email or username is already in use. */
export class UserAlreadyExistsError extends Error {
  constructor(readonly field: TakenField) {
    super(`${field} already in use`);
  }
}

/** Emails are compared trimmed and lower-cased. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Usernames are unique regardless of case and of Unicode compatibility forms (fullwidth letters and so on). */
export function canonicalUsername(username: string): string {
  return username.normalize('NFKC').toLowerCase();
}

function isUniqueViolation(error: unknown): boolean {
  if (!(error instanceof QueryFailedError)) return false;
  const driverError = error.driverError as { code?: string } | undefined;
  // 23505: PostgreSQL unique_violation; SQLITE_CONSTRAINT_UNIQUE: better-sqlite3.
  return driverError?.code === '23505' || driverError?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/** The only code that touches the users table. */
@Injectable()
export class UsersService {
  constructor(
    @InjectRepository(User) private readonly users: Repository<User>,
    private readonly changes: UserChanges,
  ) {}

  findById(id: number): Promise<User | null> {
    return this.users.findOneBy({ id });
  }

  findByEmail(email: string): Promise<User | null> {
    return this.users.findOneBy({ email: normalizeEmail(email) });
  }

  /** The user with the stored password hash, which ordinary reads never select. */
  findByEmailWithPassword(email: string): Promise<User | null> {
    return this.users
      .createQueryBuilder('user')
      .addSelect('user.hashedPassword')
      .where('user.email = :email', { email: normalizeEmail(email) })
      .getOne();
  }

  findByIdWithPassword(id: number): Promise<User | null> {
    return this.users
      .createQueryBuilder('user')
      .addSelect('user.hashedPassword')
      .where('user.id = :id', { id })
      .getOne();
  }

  /** The first of email, username that another account already uses, or null. */
  async findTakenField(email: string, username: string): Promise<TakenField | null> {
    if (await this.users.existsBy({ email: normalizeEmail(email) })) return 'email';
    if (await this.users.existsBy({ usernameCanonical: canonicalUsername(username) })) return 'username';
    return null;
  }

  /**
   * Inserts the user. The unique indexes are the real guard: when two sign-ups race past the pre-check,
   * the loser's violation becomes the same `UserAlreadyExistsError` the pre-check would have raised.
   */
  async create(newUser: NewUser): Promise<User> {
    try {
      const result = await this.users.insert({
        email: normalizeEmail(newUser.email),
        username: newUser.username,
        usernameCanonical: canonicalUsername(newUser.username),
        fullName: newUser.fullName,
        hashedPassword: newUser.hashedPassword,
      });
      const id = result.identifiers[0].id as number;
      return (await this.findById(id))!;
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      throw new UserAlreadyExistsError((await this.findTakenField(newUser.email, newUser.username)) ?? 'email');
    }
  }

  /** Stores a new password hash and ends every access token issued before it. */
  async changePassword(id: number, hashedPassword: string): Promise<void> {
    await this.users
      .createQueryBuilder()
      .update(User)
      .set({ hashedPassword, tokenVersion: () => 'token_version + 1' })
      .where('id = :id', { id })
      .execute();
    this.changes.notify(id);
  }

  /** Activates or deactivates the account; a deactivated user gets 403 on sign-in and every guarded route. */
  async setActive(id: number, isActive: boolean): Promise<void> {
    await this.users.update({ id }, { isActive });
    this.changes.notify(id);
  }

  /** Replaces the hash of an unchanged password (new cost parameters); existing tokens stay valid. */
  async replacePasswordHash(id: number, hashedPassword: string): Promise<void> {
    await this.users.update({ id }, { hashedPassword });
  }
}
