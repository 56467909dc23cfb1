import 'reflect-metadata';
import { existsSync } from 'node:fs';
import type * as NestCore from '@nestjs/core';
import type * as App from './app.module';
import { AdminService, SigningKeyDecryptionError, SigningKeys } from '..';
import { ConfigError, loadAppConfig } from './config/app-config';

const USAGE = 'usage: npm run cli -- keys:rotate | keys:revoke <kid> | grant-role <email> <role> | revoke-role <email> <role>';
const ROLE = /^[a-z][a-z0-9_-]{0,31}$/;

type Command = (app: { get<T>(type: new (...args: never[]) => T): T }, args: string[]) => Promise<string>;

/** grant-role and revoke-role: how the first admin is made, and any role changed without the API. */
function roleCommand(grant: boolean): Command {
  const name = grant ? 'grant-role' : 'revoke-role';
  return async (app, [email, role]) => {
    if (!email || !role) throw new UsageError(`${name} needs an email and a role; ${USAGE}`);
    if (!ROLE.test(role)) throw new UsageError('a role is 1 to 32 lower-case letters, digits, _ or -, starting with a letter');
    const { found, changed } = await app.get(AdminService).changeRoleByEmail(email, role, grant);
    if (!found) throw new UsageError(`no account with the email ${email}`);
    if (!changed) return `${email} ${grant ? 'already has' : 'does not have'} the role ${role}`;
    return `${grant ? 'granted' : 'revoked'} the role ${role} ${grant ? 'to' : 'from'} ${email}: in effect on every instance from its next request`;
  };
}

const COMMANDS: Record<string, Command> = {
  'grant-role': roleCommand(true),
  'revoke-role': roleCommand(false),
  'keys:rotate': async (app) => {
    const keys = app.get(SigningKeys);
    const { kid, activatesAt } = await keys.rotate();
    return `signing key ${kid} is published now and signs from ${activatesAt.toISOString()}`;
  },
  'keys:revoke': async (app, [kid]) => {
    if (!kid) throw new UsageError(`keys:revoke needs a key id (see GET /api/v1/auth/jwks); ${USAGE}`);
    if (!(await app.get(SigningKeys).revoke(kid))) throw new UsageError(`no live signing key ${kid}`);
    return `signing key ${kid} revoked: every instance refuses its tokens from its next key reload (5 s by default)`;
  },
};

class UsageError extends Error {}

/** The operator's commands, run against the service's own database and settings (the same environment). */
async function main([name, ...args]: string[]): Promise<string> {
  const command = COMMANDS[name];
  if (!command) throw new UsageError(USAGE);
  if (existsSync('.env')) process.loadEnvFile('.env');
  const config = loadAppConfig(process.env);
  const { NestFactory } = require('@nestjs/core') as typeof NestCore;
  const { AppModule } = require('./app.module') as typeof App;
  const app = await NestFactory.createApplicationContext(AppModule.register(config), { logger: ['error'], abortOnError: false });
  try {
    return await command(app, args);
  } finally {
    await app.close();
  }
}

main(process.argv.slice(2)).then(
  (line) => console.log(line),
  (error: Error) => {
    const expected = error instanceof UsageError || error instanceof ConfigError || error instanceof SigningKeyDecryptionError;
    console.error(expected ? error.message : `cli failed: ${error.message}`);
    process.exit(1);
  },
);
