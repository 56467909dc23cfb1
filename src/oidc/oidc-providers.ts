import { Inject, Injectable, Logger, NotFoundException, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import * as client from 'openid-client';
import { AuthErrors } from '../common/auth.errors';
import { ServiceBusyException } from '../common/exceptions';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import type { OidcConfig, OidcProviderConfig } from '../options/oidc-config';

/** A provider whose discovery succeeded: what openid-client needs to talk to it. */
export interface ReadyProvider {
  settings: OidcProviderConfig;
  client: client.Configuration;
}

/**
 * The configured providers and their discovery documents. A provider that cannot be reached at start-up
 * is named in one log line and tried again in the background; until then only its own routes answer 503,
 * so one provider's outage never stops the service, password sign-in or the other providers.
 */
@Injectable()
export class OidcProviders implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('OidcProviders');
  private readonly ready = new Map<string, ReadyProvider>();
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(@Inject(AUTH_CONFIG) private readonly config: AuthConfig) {}

  /** Null when no provider is configured. */
  get settings(): OidcConfig | null {
    return this.config.oidc;
  }

  async onApplicationBootstrap(): Promise<void> {
    const providers = [...(this.config.oidc?.providers.values() ?? [])];
    // Bounded by the request timeout: a provider that does not answer delays start-up by at most that.
    await Promise.all(providers.map((provider) => this.discover(provider, true)));
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    for (const timer of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
  }

  /** The provider's settings; 404 `Unknown provider` for a name that is not configured. */
  configured(name: string): OidcProviderConfig {
    const provider = this.config.oidc?.providers.get(name);
    if (!provider) throw new NotFoundException(AuthErrors.UNKNOWN_PROVIDER);
    return provider;
  }

  /** The discovered provider; 404 for an unknown name, 503 with `Retry-After` while it is unreachable. */
  get(name: string): ReadyProvider {
    this.configured(name);
    const ready = this.ready.get(name);
    if (!ready) throw new ServiceBusyException(AuthErrors.PROVIDER_UNAVAILABLE, this.config.oidc!.discoveryRetrySeconds);
    return ready;
  }

  private async discover(provider: OidcProviderConfig, first: boolean): Promise<void> {
    const oidc = this.config.oidc!;
    try {
      const configuration = await client.discovery(
        provider.issuer,
        provider.clientId,
        { client_secret: provider.clientSecret, id_token_signed_response_alg: undefined },
        client.ClientSecretPost(provider.clientSecret),
        {
          timeout: oidc.requestTimeoutSeconds,
          // Plain http is accepted by the configuration only for a loopback issuer (local providers, tests).
          execute: provider.issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [],
        },
      );
      // openid-client skips the ID token's signature when the token came straight from the token
      // endpoint (TLS vouches for it); this checks it against the provider's JWKS all the same.
      client.enableNonRepudiationChecks(configuration);
      configuration.timeout = oidc.requestTimeoutSeconds;
      this.ready.set(provider.name, { settings: provider, client: configuration });
      if (!first) this.logger.log(`OIDC provider ${provider.name} is reachable again`);
    } catch (error) {
      if (first) {
        this.logger.warn(
          `OIDC provider ${provider.name} unavailable: discovery of ${provider.issuer.href} failed (${describe(error)}); retrying every ${oidc.discoveryRetrySeconds} s`,
        );
      }
      if (this.stopped) return;
      const timer = setTimeout(() => {
        this.retries.delete(provider.name);
        void this.discover(provider, false);
      }, oidc.discoveryRetrySeconds * 1000);
      timer.unref();
      this.retries.set(provider.name, timer);
    }
  }
}

/** A short reason for the log line: the library's code and message, never a response body. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown error';
  const code = (error as { code?: string }).code;
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${code ? `${code} ` : ''}${error.message}${cause}`.slice(0, 300);
}
