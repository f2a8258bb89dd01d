/**
 * Who may call the public GRPCInferenceService and FeedbackService, and how much. A call's key is read from its
 * metadata (`authorization: Bearer <key>` or `x-api-key: <key>`) and checked against the
 * keys file's digests; each inference request is then checked against the key's models,
 * rate and quota before any work is done for it. Refusals name the key id, never the key.
 */
import type * as grpc from '@grpc/grpc-js';
import { ServiceError, Status, resourceExhausted } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import { keyIdOf, matchesDigest } from './api-key.js';
import { loadKeysFile, type KeyPolicy } from './keys-file.js';
import { Quota } from './quota.js';
import { TokenBucket, type Clock } from './token-bucket.js';

/** Load balancer and orchestrator probes: answered without a key. */
export const PROBE_METHODS: ReadonlySet<string> = new Set(['ServerLive', 'ServerReady']);
/** Calls that describe the whole mesh or change it: admin keys only. */
export const ADMIN_METHODS: ReadonlySet<string> = new Set(['ModelStatistics', 'RepositoryIndex', 'RepositoryModelLoad', 'RepositoryModelUnload']);
/**
 * Methods whose requests each take from the rate and quota (admitInference), not the call.
 * Every other method (Feedback among them, however many items it carries) takes one token
 * of the rate per call, and nothing from the quota.
 */
const INFERENCE_METHODS: ReadonlySet<string> = new Set(['ModelInfer', 'ModelStreamInfer']);

const MISSING = "missing API key: send 'authorization: Bearer <key>'";
const UNKNOWN = 'unknown API key';
const MAX_QUOTED = 128;

const unauthenticated = (message: string) => new ServiceError(Status.UNAUTHENTICATED, message);
const permissionDenied = (message: string) => new ServiceError(Status.PERMISSION_DENIED, message);

function quote(name: string): string {
  return name.length <= MAX_QUOTED ? `'${name}'` : `'${name.slice(0, MAX_QUOTED)}…' (${name.length} characters)`;
}

/** The key behind a call, and the checks made per request. */
export interface Caller {
  /** The key's id ('' when the API is open); PredictionRecord.client_id. */
  readonly keyId: string;
  /** Throws PERMISSION_DENIED unless the key may call `model`. */
  checkModel(model: string): void;
  /** One inference request of `items` items: the model check, then the key's rate and quota. Throws PERMISSION_DENIED or RESOURCE_EXHAUSTED. */
  admitInference(model: string, items: number): void;
}

export interface AccessControl {
  /** False when every call is served without a key. */
  readonly required: boolean;
  /** The caller of a call to `method`; throws UNAUTHENTICATED, PERMISSION_DENIED (admin) or RESOURCE_EXHAUSTED (rate). */
  authorize(method: string, metadata: grpc.Metadata): Caller;
  /** Stops reloading the keys file (router shutdown). */
  close(): void;
}

const ANYONE: Caller = { keyId: '', checkModel: () => {}, admitInference: () => {} };

/** No keys: every call is served (`npm start` on loopback). */
export const openAccess: AccessControl = { required: false, authorize: () => ANYONE, close: () => {} };

function firstString(metadata: grpc.Metadata, name: string): string | undefined {
  const value = metadata.get(name)[0];
  return typeof value === 'string' ? value : undefined;
}

/** The key a call presents, or undefined when it presents none. */
export function presentedKey(metadata: grpc.Metadata): string | undefined {
  const [scheme, bearer] = firstString(metadata, 'authorization')?.trim().split(/\s+/, 2) ?? [];
  if (scheme?.toLowerCase() === 'bearer' && bearer) return bearer;
  // Another scheme may be a proxy's own credentials: x-api-key still counts.
  return firstString(metadata, 'x-api-key')?.trim() || undefined;
}

function formatReset(atMs: number): string {
  return new Date(atMs).toISOString().replace('.000Z', 'Z');
}

/** A key's policy and what it has used: its rate bucket and quota counts. */
class KeyState {
  readonly bucket?: TokenBucket;
  readonly quota?: Quota;

  /** Counts carry over from `before` (the same key before a reload) where its limits did not change. */
  constructor(readonly policy: KeyPolicy, clocks: Clocks, before?: KeyState) {
    const { rate, quota } = policy;
    if (rate) this.bucket = before?.bucket && sameLimits(before.policy.rate, rate) ? before.bucket : new TokenBucket(rate.perSecond, rate.burst, clocks.monotonic);
    if (quota) this.quota = before?.quota && sameLimits(before.policy.quota, quota) ? before.quota : new Quota(quota, clocks.wall);
  }

  checkModel(model: string): void {
    const { models, id } = this.policy;
    if (models !== '*' && !models.has(model)) throw permissionDenied(`key ${id} may not call model ${quote(model)}`);
  }

  takeRate(): void {
    if (this.bucket && !this.bucket.tryTake()) throw resourceExhausted(`key ${this.policy.id} is over its rate limit of ${this.bucket.perSecond} requests/s`);
  }

  admitInference(model: string, items: number): void {
    this.checkModel(model);
    this.takeRate();
    const exceeded = this.quota?.tryCharge(items);
    if (exceeded) {
      throw resourceExhausted(`key ${this.policy.id} has used its quota of ${exceeded.limit} ${exceeded.measure} per ${exceeded.period}; it resets at ${formatReset(exceeded.resetsAtMs)}`);
    }
  }
}

function sameLimits(a: object | undefined, b: object): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

type Clocks = { monotonic?: Clock; wall?: Clock };

/**
 * The caller of one call, by key id and digest: each check reads the key's current state, so
 * a stream opened before a reload follows the reloaded policy, and ends when its key is
 * removed or replaced.
 */
class KeyCaller implements Caller {
  constructor(
    private readonly access: ApiKeyAccess,
    readonly keyId: string,
    private readonly digest: Buffer,
  ) {}

  private state(): KeyState {
    const state = this.access.state(this.keyId);
    if (!state || !state.policy.digest.equals(this.digest)) throw unauthenticated(`API key ${this.keyId} was revoked`);
    return state;
  }

  checkModel(model: string): void {
    this.state().checkModel(model);
  }

  admitInference(model: string, items: number): void {
    this.state().admitInference(model, items);
  }
}

/** Keys from a keys file: every call but the probes needs one. */
export class ApiKeyAccess implements AccessControl {
  readonly required = true;
  private states = new Map<string, KeyState>();

  /** `monotonic` times the rate limits, `wall` the quota periods (tests pass fake clocks). */
  constructor(
    policies: readonly KeyPolicy[],
    private readonly clocks: Clocks = {},
  ) {
    this.replace(policies);
  }

  get size(): number {
    return this.states.size;
  }

  /** The key's policy and counts now, if the key is in force. */
  state(id: string): KeyState | undefined {
    return this.states.get(id);
  }

  /**
   * Puts `policies` in force (a reloaded keys file). A key whose rate or quota did not change
   * keeps what it has used, so a reload does not hand every key a fresh quota.
   */
  replace(policies: readonly KeyPolicy[]): void {
    const before = this.states;
    this.states = new Map(policies.map((policy) => [policy.id, new KeyState(policy, this.clocks, before.get(policy.id))]));
  }

  authorize(method: string, metadata: grpc.Metadata): Caller {
    if (PROBE_METHODS.has(method)) return ANYONE;
    const key = presentedKey(metadata);
    if (key === undefined) throw unauthenticated(MISSING);
    const id = keyIdOf(key);
    const state = id === undefined ? undefined : this.states.get(id);
    if (!state || !matchesDigest(key, state.policy.digest)) throw unauthenticated(UNKNOWN);
    if (ADMIN_METHODS.has(method) && !state.policy.admin) throw permissionDenied(`key ${state.policy.id} may not call ${method}: it is not an admin key`);
    if (!INFERENCE_METHODS.has(method)) state.takeRate();
    return new KeyCaller(this, state.policy.id, state.policy.digest);
  }

  private onHangup?: () => void;

  /** Reads `keysFile` again and puts it in force; a wrong file is logged and the keys in force stay. */
  async reload(keysFile: string, logger: Logger): Promise<void> {
    try {
      this.replace(await loadKeysFile(keysFile));
      logger.info({ keys_file: keysFile, keys: this.size }, 'API keys reloaded');
    } catch (error) {
      logger.error({ keys_file: keysFile, reason: (error as Error).message }, 'API keys file not reloaded; the keys loaded before stay in force');
    }
  }

  /** Reloads `keysFile` on each SIGHUP, until close(). */
  reloadOnHangup(keysFile: string, logger: Logger): void {
    this.onHangup = () => void this.reload(keysFile, logger);
    process.on('SIGHUP', this.onHangup);
  }

  close(): void {
    if (this.onHangup) process.off('SIGHUP', this.onHangup);
  }
}

/**
 * The access control the router runs with: keys from `keysFile`, reloaded on SIGHUP, or open
 * (and said so loudly). A keys file that is wrong at start stops the router; one that is
 * wrong on reload is logged and the keys in force stay.
 */
export async function accessControlFor(keysFile: string | undefined, logger: Logger): Promise<AccessControl> {
  if (!keysFile) {
    logger.warn('the API is open: ROUTER_API_KEYS_FILE is not set, so every inference.GRPCInferenceService and infermesh.v1.FeedbackService call is served without an API key');
    return openAccess;
  }
  const access = new ApiKeyAccess(await loadKeysFile(keysFile));
  logger.info({ keys_file: keysFile, keys: access.size }, 'API keys required');
  access.reloadOnHangup(keysFile, logger);
  return access;
}
