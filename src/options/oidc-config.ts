import { isIP } from 'node:net';
import type { OidcOptions } from './auth-options.interface';

export interface OidcProviderConfig {
  name: string;
  issuer: URL;
  clientId: string;
  clientSecret: string;
  scopes: string[];
}

/** `oidc` of the module's options, checked and with its defaults. */
export interface OidcConfig {
  providers: Map<string, OidcProviderConfig>;
  /** No trailing slash: the callback path is appended to it. */
  publicUrl: string;
  redirectUrls: Set<string>;
  discoveryRetrySeconds: number;
  requestTimeoutSeconds: number;
}

export const OIDC_PROVIDER_NAME = /^[a-z0-9_]{1,32}$/;
const DEFAULT_SCOPES = ['openid', 'email', 'profile'];

/** A loopback host (`localhost`, 127.0.0.0/8, ::1): the only place a plain-http issuer is accepted. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return isIP(host) === 6 && (host === '::1' || host === '0:0:0:0:0:0:0:1');
}

function fail(message: string): never {
  throw new Error(`AuthModule: oidc.${message}`);
}

function httpUrl(field: string, value: string): URL {
  const url = URL.parse(value);
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.username || url.password) {
    fail(`${field} must be an absolute http(s) URL without credentials: ${value}`);
  }
  return url;
}

export function resolveOidcConfig(options: OidcOptions | undefined): OidcConfig | null {
  if (!options || options.providers.length === 0) return null;
  const providers = new Map<string, OidcProviderConfig>();
  for (const provider of options.providers) {
    if (!OIDC_PROVIDER_NAME.test(provider.name)) fail(`providers: name must be 1 to 32 lower-case letters, digits or _: ${provider.name}`);
    if (providers.has(provider.name)) fail(`providers: ${provider.name} is given twice`);
    const issuer = httpUrl(`providers.${provider.name}.issuer`, provider.issuer);
    // A plain-http issuer could be impersonated by anyone on the path; only a local one is trusted.
    if (issuer.protocol === 'http:' && !isLoopbackHost(issuer.hostname)) {
      fail(`providers.${provider.name}.issuer must use https (http only on a loopback address): ${provider.issuer}`);
    }
    if (!provider.clientId) fail(`providers.${provider.name}.clientId is required`);
    if (!provider.clientSecret) fail(`providers.${provider.name}.clientSecret is required`);
    const scopes = provider.scopes && provider.scopes.length > 0 ? provider.scopes : DEFAULT_SCOPES;
    if (scopes.some((scope) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope))) fail(`providers.${provider.name}.scopes has an invalid scope`);
    providers.set(provider.name, {
      name: provider.name,
      issuer,
      clientId: provider.clientId,
      clientSecret: provider.clientSecret,
      scopes: scopes.includes('openid') ? scopes : ['openid', ...scopes],
    });
  }
  const publicUrl = httpUrl('publicUrl', options.publicUrl);
  if (publicUrl.search || publicUrl.hash) fail(`publicUrl must have no query or fragment: ${options.publicUrl}`);
  if (options.redirectUrls.length === 0) fail('redirectUrls must list at least one page of the client app');
  for (const redirect of options.redirectUrls) {
    const url = httpUrl('redirectUrls', redirect);
    if (url.hash) fail(`redirectUrls must have no fragment: ${redirect}`);
  }
  const seconds = (field: string, value: number | undefined, fallback: number) => {
    const result = value ?? fallback;
    if (!Number.isInteger(result) || result < 1) fail(`${field} must be an integer >= 1, got ${result}`);
    return result;
  };
  return {
    providers,
    publicUrl: publicUrl.toString().replace(/\/+$/, ''),
    redirectUrls: new Set(options.redirectUrls),
    discoveryRetrySeconds: seconds('discoveryRetrySeconds', options.discoveryRetrySeconds, 30),
    requestTimeoutSeconds: seconds('requestTimeoutSeconds', options.requestTimeoutSeconds, 5),
  };
}
