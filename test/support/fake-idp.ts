import { createServer, IncomingMessage, Server } from 'node:http';
import type { webcrypto } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { CLIENT_ID } from './oidc';

/** How the next ID token is made wrong (or not). */
export type IdTokenFault = 'none' | 'audience' | 'issuer' | 'expired' | 'foreign-key' | 'nonce' | 'token-endpoint-error';

interface Pending {
  nonce: string;
  claims: Record<string, unknown>;
}

/**
 * A small provider by hand, over real HTTP on loopback: discovery, JWKS, an authorization endpoint that
 * answers at once, and a token endpoint whose ID token the test can spoil one way at a time, which a
 * well-behaved provider such as oidc-provider never does.
 */
export class FakeIdp {
  fault: IdTokenFault = 'none';
  /** Requests received, by path: a refusal before anything is sent to the provider leaves these alone. */
  readonly requests: string[] = [];
  private readonly pending = new Map<string, Pending>();
  private counter = 0;

  issuer = '';

  private constructor(
    private readonly server: Server,
    private readonly keys: { signing: webcrypto.CryptoKey; foreign: webcrypto.CryptoKey; publicJwk: Record<string, unknown> },
  ) {
    server.on('request', (req, res) => {
      void this.handle(req)
        .then(({ status, headers, body }) => res.writeHead(status, headers).end(body))
        .catch((error: Error) => res.writeHead(500).end(error.message));
    });
  }

  static async start(port = 0): Promise<FakeIdp> {
    // Keys first and the handler attached before listening: a request arriving early must not hang.
    const signing = await generateKeyPair('RS256', { extractable: true });
    const foreign = await generateKeyPair('RS256');
    const publicJwk = { ...(await exportJWK(signing.publicKey)), kid: 'fake-key', alg: 'RS256', use: 'sig' };
    const server = createServer();
    const idp = new FakeIdp(server, { signing: signing.privateKey, foreign: foreign.privateKey, publicJwk });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    idp.issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return idp;
  }

  /** The claims (beyond iss, aud, nonce, iat, exp) of the account the next authorization signs in. */
  nextAccount: Record<string, unknown> = { sub: 'fake-subject', email: 'fake@idp.test', email_verified: true };

  async stop(): Promise<void> {
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    const url = new URL(req.url!, this.issuer);
    this.requests.push(url.pathname);
    const json = (body: unknown, status = 200) => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    switch (url.pathname) {
      case '/.well-known/openid-configuration':
        return json({
          issuer: this.issuer,
          authorization_endpoint: `${this.issuer}/authorize`,
          token_endpoint: `${this.issuer}/token`,
          jwks_uri: `${this.issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['client_secret_post'],
        });
      case '/jwks':
        return json({ keys: [this.keys.publicJwk] });
      case '/authorize': {
        const code = `code-${++this.counter}`;
        this.pending.set(code, { nonce: url.searchParams.get('nonce')!, claims: { ...this.nextAccount } });
        const back = new URL(url.searchParams.get('redirect_uri')!);
        back.searchParams.set('code', code);
        back.searchParams.set('state', url.searchParams.get('state')!);
        return { status: 302, headers: { location: back.href }, body: '' };
      }
      case '/token': {
        let raw = '';
        for await (const chunk of req) raw += chunk;
        const form = new URLSearchParams(raw);
        const pending = this.pending.get(form.get('code') ?? '');
        this.pending.delete(form.get('code') ?? '');
        if (!pending || this.fault === 'token-endpoint-error') return json({ error: 'invalid_grant' }, 400);
        const now = Math.floor(Date.now() / 1000);
        const token = new SignJWT({
          ...pending.claims,
          nonce: this.fault === 'nonce' ? 'another-nonce' : pending.nonce,
        })
          .setProtectedHeader({ alg: 'RS256', kid: 'fake-key' })
          .setIssuer(this.fault === 'issuer' ? 'https://another-issuer.test' : this.issuer)
          .setAudience(this.fault === 'audience' ? 'another-client' : CLIENT_ID)
          .setIssuedAt(this.fault === 'expired' ? now - 7200 : now)
          .setExpirationTime(this.fault === 'expired' ? now - 3600 : now + 300);
        const idToken = await token.sign(this.fault === 'foreign-key' ? this.keys.foreign : this.keys.signing);
        return json({ access_token: `at-${this.counter}`, token_type: 'Bearer', expires_in: 300, id_token: idToken });
      }
      default:
        return json({ error: 'not_found' }, 404);
    }
  }
}
