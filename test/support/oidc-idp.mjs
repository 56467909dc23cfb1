// A real OpenID Connect provider (oidc-provider 9) on loopback, for the e2e suites. Run as a child
// process (it is an ES module with top-level dependencies jest cannot load). Its interactions are
// finished programmatically: the account is the request's `login_hint` (`cancel` answers access_denied).
// The test adds accounts with POST /__test/accounts {id, email, email_verified, name, preferred_username}.
// Prints `listening <port>` once ready. Config from argv[2]: {port, clients: [{client_id, client_secret, redirect_uris}]}.
import { createServer } from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const settings = JSON.parse(process.argv[2]);
const accounts = new Map();

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };

const server = createServer();
await new Promise((resolve) => server.listen(settings.port ?? 0, '127.0.0.1', resolve));
const port = server.address().port;
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: settings.clients.map((client) => ({
    ...client,
    token_endpoint_auth_method: 'client_secret_post',
    response_types: ['code'],
    grant_types: ['authorization_code'],
  })),
  jwks: { keys: [jwk] },
  cookies: { keys: ['a-test-cookie-key-of-enough-length'] },
  // Claims of the requested scopes in the ID token itself, as Google and most providers do.
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  async findAccount(_ctx, id) {
    const account = accounts.get(id);
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account }) };
  },
});
provider.on('server_error', (_ctx, error) => console.error('idp server_error', error));
const callback = provider.callback();

server.on('request', async (req, res) => {
  try {
    if (req.method === 'POST' && req.url === '/__test/accounts') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const { id, ...claims } = JSON.parse(body);
      accounts.set(id, claims);
      res.writeHead(204).end();
      return;
    }
    if (req.url.startsWith('/interaction/')) {
      const details = await provider.interactionDetails(req, res);
      const hint = details.params.login_hint;
      if (hint === 'cancel' || !accounts.has(hint)) {
        await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'The user cancelled' }, { mergeWithLastSubmission: false });
        return;
      }
      const grant = new provider.Grant({ accountId: hint, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId: hint }, consent: { grantId } }, { mergeWithLastSubmission: false });
      return;
    }
    callback(req, res);
  } catch (error) {
    console.error('idp error', error);
    res.writeHead(500).end();
  }
});

console.log(`listening ${port}`);
