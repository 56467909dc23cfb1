import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from './src/app/config/database';
import { DEFAULT_DATABASE_URL, parseDatabaseUrl } from './src/app/config/database-url';

/** The DataSource of the TypeORM CLI (`npm run migration:run`), on the same DATABASE_URL as the app. */
if (existsSync('.env')) process.loadEnvFile('.env');
export default new DataSource(dataSourceOptions(parseDatabaseUrl(process.env.DATABASE_URL || DEFAULT_DATABASE_URL), { forMigrations: true }));
