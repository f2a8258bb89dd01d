/**
 * Who may call the public GRPCInferenceService, and how much. A call's key is read from its
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
/** Calls that describe the whole mesh (and, later, change it): admin keys only. */
export const ADMIN_METHODS: ReadonlySet<string> = new Set(['ModelStatistics', 'RepositoryIndex']);
/** Methods whose requests each take from the rate and quota (admitInference), not the call. */
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
}

const ANYONE: Caller = { keyId: '', checkModel: () => {}, admitInference: () => {} };

/** No keys: every call is served (`npm start` on loopback). */
export const openAccess: AccessControl = { required: false, authorize: () => ANYONE };

function firstString(metadata: grpc.Metadata, name: string): string | undefined {
  const value = metadata.get(name)[0];
  return typeof value === 'string' ? value : undefined;
}

/** The key a call presents, or undefined when it presents none. */
export function presentedKey(metadata: grpc.Metadata): string | undefined {
  const authorization = firstString(metadata, 'authorization');
  if (authorization !== undefined) {
    const [scheme, key] = authorization.trim().split(/\s+/, 2);
    return scheme.toLowerCase() === 'bearer' && key ? key : undefined;
  }
  return firstString(metadata, 'x-api-key')?.trim() || undefined;
}

function formatReset(atMs: number): string {
  return new Date(atMs).toISOString().replace('.000Z', 'Z');
}

class KeyCaller implements Caller {
  private readonly bucket?: TokenBucket;
  private readonly quota?: Quota;

  constructor(readonly policy: KeyPolicy, clocks: { monotonic?: Clock; wall?: Clock }) {
    if (policy.rate) this.bucket = new TokenBucket(policy.rate.perSecond, policy.rate.burst, clocks.monotonic);
    if (policy.quota) this.quota = new Quota(policy.quota, clocks.wall);
  }

  get keyId(): string {
    return this.policy.id;
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

/** Keys from a keys file: every call but the probes needs one. */
export class ApiKeyAccess implements AccessControl {
  readonly required = true;
  private readonly callers: Map<string, KeyCaller>;

  /** `monotonic` times the rate limits, `wall` the quota periods (tests pass fake clocks). */
  constructor(policies: readonly KeyPolicy[], clocks: { monotonic?: Clock; wall?: Clock } = {}) {
    this.callers = new Map(policies.map((policy) => [policy.id, new KeyCaller(policy, clocks)]));
  }

  get size(): number {
    return this.callers.size;
  }

  authorize(method: string, metadata: grpc.Metadata): Caller {
    if (PROBE_METHODS.has(method)) return ANYONE;
    const key = presentedKey(metadata);
    if (key === undefined) throw unauthenticated(MISSING);
    const id = keyIdOf(key);
    const caller = id === undefined ? undefined : this.callers.get(id);
    if (!caller || !matchesDigest(key, caller.policy.digest)) throw unauthenticated(UNKNOWN);
    if (ADMIN_METHODS.has(method) && !caller.policy.admin) throw permissionDenied(`key ${caller.keyId} may not call ${method}: it is not an admin key`);
    if (!INFERENCE_METHODS.has(method)) caller.takeRate();
    return caller;
  }
}

/** The access control the router runs with: keys from `keysFile`, or open (and said so loudly). */
export async function accessControlFor(keysFile: string | undefined, logger: Logger): Promise<AccessControl> {
  if (!keysFile) {
    logger.warn('the API is open: ROUTER_API_KEYS_FILE is not set, so every inference.GRPCInferenceService call is served without an API key');
    return openAccess;
  }
  const access = new ApiKeyAccess(await loadKeysFile(keysFile));
  logger.info({ keys_file: keysFile, keys: access.size }, 'API keys required');
  return access;
}
