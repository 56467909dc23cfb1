import type { OidcOptions } from '../..';

type Env = Record<string, string | undefined>;

/** Thrown with the one line naming the bad variable; app-config turns it into its ConfigError. */
export class OidcEnvError extends Error {}

function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

function httpUrl(name: string, raw: string): URL {
  const url = URL.parse(raw);
  if (!url || !['http:', 'https:'].includes(url.protocol)) throw new OidcEnvError(`${name} must be an http(s) URL, got "${raw}"`);
  return url;
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}

/**
 * `OIDC_PROVIDERS=google,gitlab` and for each `OIDC_<NAME>_ISSUER`, `_CLIENT_ID`, `_CLIENT_SECRET`,
 * optional `_SCOPES`; `PUBLIC_URL`; `OIDC_REDIRECT_URLS`. Undefined when no provider is listed.
 */
export function oidcFromEnv(env: Env): OidcOptions | undefined {
  const listed = read(env, 'OIDC_PROVIDERS');
  const publicUrl = read(env, 'PUBLIC_URL') ?? 'http://localhost:3000';
  const parsedPublicUrl = httpUrl('PUBLIC_URL', publicUrl);
  if (parsedPublicUrl.search || parsedPublicUrl.hash) throw new OidcEnvError(`PUBLIC_URL must have no query or fragment, got "${publicUrl}"`);
  if (listed === undefined) return undefined;
  const names = listed.split(',').map((name) => name.trim().toLowerCase());
  const providers = names.map((name) => {
    if (!/^[a-z0-9_]{1,32}$/.test(name)) {
      throw new OidcEnvError(`OIDC_PROVIDERS must list names of letters, digits and _ (up to 32), got "${name}"`);
    }
    if (names.indexOf(name) !== names.lastIndexOf(name)) throw new OidcEnvError(`OIDC_PROVIDERS lists "${name}" twice`);
    const prefix = `OIDC_${name.toUpperCase()}_`;
    const required = (suffix: string) => {
      const value = read(env, prefix + suffix);
      if (value === undefined) throw new OidcEnvError(`${prefix}${suffix} is required since OIDC_PROVIDERS lists "${name}"`);
      return value;
    };
    const issuer = required('ISSUER');
    const issuerUrl = httpUrl(`${prefix}ISSUER`, issuer);
    if (issuerUrl.protocol === 'http:' && !isLoopback(issuerUrl.hostname)) {
      throw new OidcEnvError(`${prefix}ISSUER must use https (http only on a loopback address), got "${issuer}"`);
    }
    const scopes = read(env, `${prefix}SCOPES`)?.split(/[\s,]+/).filter(Boolean);
    return { name, issuer, clientId: required('CLIENT_ID'), clientSecret: required('CLIENT_SECRET'), scopes };
  });
  const redirectUrls = (read(env, 'OIDC_REDIRECT_URLS') ?? '').split(',').map((entry) => entry.trim()).filter(Boolean);
  if (redirectUrls.length === 0) throw new OidcEnvError('OIDC_REDIRECT_URLS is required since OIDC_PROVIDERS is set (pages of the client app, comma-separated)');
  for (const redirect of redirectUrls) {
    if (httpUrl('OIDC_REDIRECT_URLS', redirect).hash) throw new OidcEnvError(`OIDC_REDIRECT_URLS entries must have no fragment, got "${redirect}"`);
  }
  return { providers, publicUrl, redirectUrls };
}
