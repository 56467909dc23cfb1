import { Entity, getMetadataArgsStorage } from 'typeorm';

const moduleEntities = new Set<string | Function>();
let appliedPrefix: string | undefined;

/** `@Entity(name)` for the module's own tables, whose names take the table prefix. */
export function AuthEntity(name: string): ClassDecorator {
  return (target) => {
    Entity(name)(target);
    moduleEntities.add(target);
  };
}

/**
 * Puts `prefix` in front of the module's table, index and constraint names (`auth_` gives `auth_users`, …),
 * so a host that already has a `users` table can keep it. Entity names are fixed when TypeORM builds its
 * metadata, so the prefix holds for the whole process: call it (or give `tablePrefix` to
 * `AuthModule.forRoot*`, which calls it) before the DataSource initialises, and with one value only.
 * A TypeORM CLI data source file of the host calls it before listing `AUTH_ENTITIES` and `AUTH_MIGRATIONS`.
 */
export function setAuthTablePrefix(prefix: string): void {
  if (prefix !== '' && !/^[A-Za-z_][A-Za-z0-9_]{0,15}$/.test(prefix)) {
    throw new Error(`AuthModule: tablePrefix must be up to 16 letters, digits or underscores, not starting with a digit: ${prefix}`);
  }
  if (appliedPrefix !== undefined) {
    if (appliedPrefix === prefix) return;
    throw new Error(`AuthModule: tablePrefix is already '${appliedPrefix}' in this process and cannot become '${prefix}'`);
  }
  appliedPrefix = prefix;
  if (prefix === '') return;
  const storage = getMetadataArgsStorage();
  for (const table of storage.tables) {
    if (moduleEntities.has(table.target) && table.name) table.name = prefix + table.name;
  }
  for (const index of storage.indices) {
    if (moduleEntities.has(index.target) && index.name) index.name = prefix + index.name;
  }
}

/** A table, index or constraint name of the module with the prefix in force (migrations and raw SQL use it). */
export function authName(name: string): string {
  return (appliedPrefix ?? '') + name;
}
