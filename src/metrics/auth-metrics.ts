import { Inject, Injectable } from '@nestjs/common';
import type { Counter, Gauge, Registry } from 'prom-client';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import type { MetricsRegistry } from '../options/auth-options.interface';

/** The first step of a sign-in (`/signin`, the password) or the second (`/signin/mfa`, the code). */
export type SigninStep = 'password' | 'mfa';
export type SigninOutcome =
  | 'success'
  | 'invalid_credentials'
  | 'locked'
  | 'mfa_required'
  | 'inactive'
  | 'email_not_verified'
  | 'invalid_code'
  | 'invalid_mfa_token';
export type RefreshOutcome = 'rotated' | 'within_grace' | 'reused' | 'invalid';
/** Which limit refused a request with 429. */
export type RateLimiter = 'per_address' | 'signin_failures' | 'mail_requests';

interface OutboxCounts {
  pending: number;
  dead: number;
}

/** The names a host finds in its registry; kept together so the README and the dashboard can follow them. */
export const AUTH_METRIC_NAMES = {
  signins: 'auth_signin_total',
  refreshes: 'auth_refresh_total',
  rateLimited: 'auth_rate_limited_total',
  hashingRejected: 'auth_password_hashing_rejected_total',
  hashingQueue: 'auth_password_hashing_queue_depth',
  hashingRunning: 'auth_password_hashing_in_flight',
  outbox: 'auth_mail_outbox_messages',
} as const;

type PromClient = typeof import('prom-client');

/**
 * Loaded only when a registry is given, so a host without metrics needs no prom-client at all (it is an
 * optional peer): the one the host installed is the one its registry comes from.
 */
function loadPromClient(): PromClient {
  try {
    return require('prom-client') as PromClient;
  } catch {
    throw new Error('AuthModule: metrics.registry needs the prom-client package (npm install prom-client)');
  }
}

/**
 * The module's metric points: features call these, and they count into the host's prom-client registry
 * when `metrics.registry` is set, or do nothing. Gauges that need a look at state (the outbox, the
 * hashing queue) are read when the registry is scraped, not kept up to date on every change.
 */
@Injectable()
export class AuthMetrics {
  private readonly signins?: Counter<'step' | 'outcome'>;
  private readonly refreshes?: Counter<'outcome'>;
  private readonly rateLimits?: Counter<'limiter'>;
  private readonly hashingRejections?: Counter;
  private outboxCounts: () => Promise<OutboxCounts> = async () => ({ pending: 0, dead: 0 });
  private hashingLoad: () => { waiting: number; running: number } = () => ({ waiting: 0, running: 0 });

  constructor(@Inject(AUTH_CONFIG) config: AuthConfig) {
    const registry = config.metrics.registry;
    if (!registry) return;
    const client = loadPromClient();
    const registers = [registry as unknown as Registry];
    // A second module in the same registry (two apps in one process) shares the metrics of the first.
    const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
    const load = () => this.hashingLoad();
    const outbox = () => this.outboxCounts();
    this.signins =
      existing(AUTH_METRIC_NAMES.signins) ??
      new client.Counter({
        name: AUTH_METRIC_NAMES.signins,
        help: 'Sign-in attempts by step (password, mfa) and outcome',
        labelNames: ['step', 'outcome'],
        registers,
      });
    this.refreshes =
      existing(AUTH_METRIC_NAMES.refreshes) ??
      new client.Counter({
        name: AUTH_METRIC_NAMES.refreshes,
        help: 'Refresh token presentations by outcome; reused means a stolen copy was detected and its session revoked',
        labelNames: ['outcome'],
        registers,
      });
    this.rateLimits =
      existing(AUTH_METRIC_NAMES.rateLimited) ??
      new client.Counter({
        name: AUTH_METRIC_NAMES.rateLimited,
        help: 'Requests refused with 429, by the limit that refused them',
        labelNames: ['limiter'],
        registers,
      });
    this.hashingRejections =
      existing(AUTH_METRIC_NAMES.hashingRejected) ??
      new client.Counter({
        name: AUTH_METRIC_NAMES.hashingRejected,
        help: 'Requests answered 503 because the password hashing queue was full',
        registers,
      });
    if (!existing(AUTH_METRIC_NAMES.hashingQueue)) {
      new client.Gauge({
        name: AUTH_METRIC_NAMES.hashingQueue,
        help: 'Password hashes waiting for a slot',
        registers,
        collect(this: Gauge) {
          this.set(load().waiting);
        },
      });
      new client.Gauge({
        name: AUTH_METRIC_NAMES.hashingRunning,
        help: 'Password hashes being computed',
        registers,
        collect(this: Gauge) {
          this.set(load().running);
        },
      });
    }
    if (!existing(AUTH_METRIC_NAMES.outbox)) {
      new client.Gauge({
        name: AUTH_METRIC_NAMES.outbox,
        help: 'Mail outbox messages by status: pending (not yet delivered) and dead (given up, kept for inspection)',
        labelNames: ['status'],
        registers,
        async collect(this: Gauge<'status'>) {
          const counts = await outbox();
          this.set({ status: 'pending' }, counts.pending);
          this.set({ status: 'dead' }, counts.dead);
        },
      });
    }
  }

  signin(step: SigninStep, outcome: SigninOutcome): void {
    this.signins?.inc({ step, outcome });
  }

  refresh(outcome: RefreshOutcome): void {
    this.refreshes?.inc({ outcome });
  }

  rateLimited(limiter: RateLimiter): void {
    this.rateLimits?.inc({ limiter });
  }

  hashingRejected(): void {
    this.hashingRejections?.inc();
  }

  /** The outbox says how to count its messages; read at each scrape (one grouped count query). */
  countOutboxWith(counts: () => Promise<OutboxCounts>): void {
    this.outboxCounts = counts;
  }

  /** The hasher says how to read its queue; read at each scrape. */
  readHashingLoadWith(load: () => { waiting: number; running: number }): void {
    this.hashingLoad = load;
  }
}

/** Counts nothing: for code built by hand (unit tests) rather than by the module. */
export function noMetrics(): AuthMetrics {
  return new AuthMetrics({ metrics: {} } as AuthConfig);
}

export type { MetricsRegistry };
