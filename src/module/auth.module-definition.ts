import { ConfigurableModuleBuilder, DynamicModule } from '@nestjs/common';
import { RouterModule } from '@nestjs/core';
import type { AuthModuleOptions } from '../options/auth-options.interface';
import { AUTH_ROUTE_PREFIX, DEFAULT_ROUTE_PREFIX, normaliseRoutePrefix } from '../options/route-prefix';
import { setAuthTablePrefix } from '../options/table-prefix';
import { OidcController } from '../oidc/oidc.controller';

/**
 * The OIDC routes are served when providers are configured. `forRoot` knows its options here; a
 * `forRootAsync` factory has not run yet, so its module serves them always (404 `Unknown provider` without providers).
 */
function servesOidc(definition: DynamicModule, optionsToken: unknown): boolean {
  for (const provider of definition.providers ?? []) {
    if (typeof provider === 'object' && 'provide' in provider && provider.provide === optionsToken && 'useValue' in provider) {
      return ((provider.useValue as AuthModuleOptions).oidc?.providers.length ?? 0) > 0;
    }
  }
  return true;
}

/**
 * Given next to the options (`forRoot({ ...options, routePrefix })`, `forRootAsync({ routePrefix, useFactory })`):
 * they shape the module itself, so they must be known before any factory runs.
 */
export interface AuthModuleExtras {
  /** Make the module's exports (guard, services) visible to every module of the host. Default false. */
  isGlobal?: boolean;
  /**
   * Path of the auth routes, below the host's global prefix (`setGlobalPrefix('api')` with `v1/auth` serves
   * `/api/v1/auth/signin`). The refresh cookie's path follows. Default `api/v1/auth`.
   */
  routePrefix?: string;
  /** Put in front of the module's table names (`auth_` gives `auth_users`, …); see `setAuthTablePrefix`. Default empty. */
  tablePrefix?: string;
}

export const {
  ConfigurableModuleClass: AuthConfigurableModule,
  MODULE_OPTIONS_TOKEN: AUTH_MODULE_OPTIONS,
  OPTIONS_TYPE: AUTH_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: AUTH_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<AuthModuleOptions>({ moduleName: 'Auth' })
  .setClassMethodName('forRoot')
  .setExtras<AuthModuleExtras>(
    { isGlobal: false, routePrefix: DEFAULT_ROUTE_PREFIX, tablePrefix: '' },
    (definition, extras): DynamicModule => {
      setAuthTablePrefix(extras.tablePrefix ?? '');
      const routePrefix = normaliseRoutePrefix(extras.routePrefix ?? DEFAULT_ROUTE_PREFIX);
      return {
        ...definition,
        global: extras.isGlobal,
        controllers: [...(definition.controllers ?? []), ...(servesOidc(definition, AUTH_MODULE_OPTIONS) ? [OidcController] : [])],
        // RouterModule keys the path by application, so two apps in one process keep their own.
        imports: [...(definition.imports ?? []), RouterModule.register([{ path: routePrefix, module: definition.module }])],
        providers: [...(definition.providers ?? []), { provide: AUTH_ROUTE_PREFIX, useValue: routePrefix }],
      };
    },
  )
  .build();
