import 'reflect-metadata';
import { existsSync } from 'node:fs';
import type * as NestCore from '@nestjs/core';
import type * as App from './app.module';
import { SigningKeyDecryptionError, SigningKeys } from '..';
import { ConfigError, loadAppConfig } from './config/app-config';

const USAGE = 'usage: npm run cli -- keys:rotate | keys:revoke <kid>';

type Command = (keys: SigningKeys, args: string[]) => Promise<string>;

const COMMANDS: Record<string, Command> = {
  'keys:rotate': async (keys) => {
    const { kid, activatesAt } = await keys.rotate();
    return `signing key ${kid} is published now and signs from ${activatesAt.toISOString()}`;
  },
  'keys:revoke': async (keys, [kid]) => {
    if (!kid) throw new UsageError(`keys:revoke needs a key id (see GET /api/v1/auth/jwks); ${USAGE}`);
    if (!(await keys.revoke(kid))) throw new UsageError(`no live signing key ${kid}`);
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
    return await command(app.get(SigningKeys), args);
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
