// Jest globalTeardown: stops the PostgreSQL and Redis that global-setup.mjs started (if any) and removes
// the embedded PostgreSQL's data folder.
import { stopStarted } from './global-setup.mjs';

export default async function globalTeardown() {
  await stopStarted();
}
