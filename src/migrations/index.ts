import { CreateAuthTables1764080000000 } from './1764080000000-create-auth-tables';
import { MailOutboxAndEmailVerification1764090000000 } from './1764090000000-mail-outbox-and-email-verification';
import { SessionsAndRefreshTokens1764100000000 } from './1764100000000-sessions-and-refresh-tokens';
import { SigningKeys1764110000000 } from './1764110000000-signing-keys';
import { SecondFactor1764120000000 } from './1764120000000-second-factor';
import { CanonicalEmails1764130000000 } from './1764130000000-canonical-emails';
import { RolesAndAuditEvents1764140000000 } from './1764140000000-roles-and-audit-events';
import { AccountSelfService1764150000000 } from './1764150000000-account-self-service';
import { OidcIdentities1764160000000 } from './1764160000000-oidc-identities';

/** The module's migrations, in order. A host app adds them to its DataSource's `migrations`. */
export const AUTH_MIGRATIONS = [
  CreateAuthTables1764080000000,
  MailOutboxAndEmailVerification1764090000000,
  SessionsAndRefreshTokens1764100000000,
  SigningKeys1764110000000,
  SecondFactor1764120000000,
  CanonicalEmails1764130000000,
  RolesAndAuditEvents1764140000000,
  AccountSelfService1764150000000,
  OidcIdentities1764160000000,
];
