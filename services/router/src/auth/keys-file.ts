/**
 * The keys file (ROUTER_API_KEYS_FILE), YAML or JSON, validated once at start: an entry that
 * is wrong stops the router with a message naming the entry and the field, never quoting a
 * digest.
 *
 *   keys:
 *     - id: reports
 *       sha256: 9f86d0…           # `infermesh keys hash` of the key
 *       models: [iris]            # or "*"
 *       admin: false              # ModelStatistics, RepositoryIndex, RepositoryModelLoad/Unload
 *       rate: { per_second: 100, burst: 200 }
 *       quota: { requests: 100000, items: 1000000, period: day }
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from '@infermesh/config';
import { KEY_ID_PATTERN, SHA256_HEX_PATTERN } from './api-key.js';
import { QUOTA_PERIODS, type QuotaLimits } from './quota.js';

/** What one key may do. */
export interface KeyPolicy {
  id: string;
  /** SHA-256 of the whole key. */
  digest: Buffer;
  /** Model names, or '*' for every model. */
  models: '*' | ReadonlySet<string>;
  admin: boolean;
  rate?: { perSecond: number; burst: number };
  quota?: QuotaLimits;
}

const entrySchema = z.strictObject({
  id: z.string().regex(KEY_ID_PATTERN, 'must be 1 to 64 letters, digits and dashes, starting with a letter or digit'),
  sha256: z.string().regex(SHA256_HEX_PATTERN, 'must be 64 lowercase hex digits (`infermesh keys hash`)'),
  models: z.union([z.literal('*'), z.array(z.string().min(1)).min(1)], { error: 'must be "*" or a list of model names' }),
  admin: z.boolean().default(false),
  rate: z.strictObject({ per_second: z.number().positive(), burst: z.number().int().positive().optional() }).optional(),
  quota: z
    .strictObject({ requests: z.number().int().positive().optional(), items: z.number().int().positive().optional(), period: z.enum(QUOTA_PERIODS) })
    .refine((q) => q.requests !== undefined || q.items !== undefined, 'needs requests, items or both')
    .optional(),
});

const fileSchema = z.strictObject({ keys: z.array(z.unknown()) });

export class KeysFileError extends Error {
  override readonly name = 'KeysFileError';
}

function describe(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`).join('; ');
}

/** The policies of a keys file's text; `source` names the file in errors. */
export function parseKeysFile(text: string, source: string): KeyPolicy[] {
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new KeysFileError(`${source} is neither YAML nor JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  const file = fileSchema.safeParse(document);
  if (!file.success) throw new KeysFileError(`${source} must hold 'keys:', a list of key entries (${describe(file.error)})`);
  const seen = new Set<string>();
  return file.data.keys.map((raw, index) => {
    const rawId = (raw as { id?: unknown } | null)?.id;
    const name = `${source} entry ${index + 1}${typeof rawId === 'string' && KEY_ID_PATTERN.test(rawId) ? ` (id '${rawId}')` : ''}`;
    const entry = entrySchema.safeParse(raw);
    if (!entry.success) throw new KeysFileError(`${name}: ${describe(entry.error)}`);
    const { id, sha256, models, admin, rate, quota } = entry.data;
    if (seen.has(id)) throw new KeysFileError(`${name}: the id is used by an earlier entry`);
    seen.add(id);
    return {
      id,
      digest: Buffer.from(sha256, 'hex'),
      models: models === '*' ? '*' : new Set(models),
      admin,
      ...(rate ? { rate: { perSecond: rate.per_second, burst: rate.burst ?? Math.max(1, Math.ceil(rate.per_second)) } } : {}),
      ...(quota ? { quota } : {}),
    };
  });
}

export async function loadKeysFile(path: string): Promise<KeyPolicy[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new KeysFileError(`cannot read the keys file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseKeysFile(text, path);
}
