/**
 * infermesh keys: API keys for the router's keys file (ROUTER_API_KEYS_FILE).
 *
 *   keys create --id ID [--models a,b] [--admin] [--rate N [--burst N]]
 *               [--quota-requests N] [--quota-items N] [--quota-period day] [--file PATH]
 *   keys hash   < key
 *
 * `create` prints the key on stdout, alone (it is shown only this once: the router keeps
 * only its SHA-256), and the keys file entry on stderr, or appends it to --file. The key
 * format is the router's (services/router/src/auth/api-key.ts); test/api-keys.e2e.test.ts
 * checks that a key made here is accepted there.
 */
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, readFile, writeFile } from 'node:fs/promises';

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const KEY = /^imk_[A-Za-z0-9][A-Za-z0-9-]{0,63}_[A-Za-z0-9_-]{43}$/;
const PERIODS = ['minute', 'hour', 'day', 'month'];

const sha256 = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

/** Throws unless `id` can name a key (it is part of the key, and of the router's logs). */
export function checkKeyId(id: string): string {
  if (!KEY_ID.test(id)) throw new Error(`--id: '${id.slice(0, 64)}' is not a key id (1 to 64 letters, digits and dashes, starting with a letter or digit)`);
  return id;
}

export interface KeyOptions {
  id: string;
  /** The models the key may call; '*': every one. */
  models: '*' | string[];
  admin: boolean;
  /** Requests per second, and the burst above it. */
  rate?: number;
  burst?: number;
  quotaRequests?: number;
  quotaItems?: number;
  quotaPeriod: string;
  /** The keys file to add the entry to. */
  file?: string;
  /** The key and its entry as JSON on stdout. */
  json: boolean;
}

interface Entry {
  id: string;
  sha256: string;
  models: '*' | string[];
  admin: boolean;
  rate?: { per_second: number; burst?: number };
  quota?: { requests?: number; items?: number; period: string };
}

/** One entry of the `keys:` list, in YAML (names as JSON strings, which YAML reads as they are). */
function yamlEntry(entry: Entry): string {
  const flow = (fields: Record<string, unknown>) =>
    `{ ${Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${v}`).join(', ')} }`;
  const lines = [
    `  - id: ${entry.id}`,
    `    sha256: ${entry.sha256}`,
    `    models: ${entry.models === '*' ? '"*"' : `[${entry.models.map((m) => JSON.stringify(m)).join(', ')}]`}`,
    `    admin: ${entry.admin}`,
  ];
  if (entry.rate) lines.push(`    rate: ${flow(entry.rate)}`);
  if (entry.quota) lines.push(`    quota: ${flow(entry.quota)}`);
  return `${lines.join('\n')}\n`;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Adds `entry` to the keys file at `path`: JSON files are rewritten, YAML files appended to (comments kept). */
async function addToFile(path: string, entry: Entry): Promise<void> {
  const existing = await readOptional(path);
  if (path.endsWith('.json')) {
    const document = (existing ? JSON.parse(existing) : { keys: [] }) as { keys?: Entry[] };
    if (!Array.isArray(document.keys)) throw new Error(`${path} has no "keys" list`);
    if (document.keys.some((k) => k.id === entry.id)) throw new Error(`${path} already has a key with id '${entry.id}'`);
    document.keys.push(entry);
    await writeFile(path, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o600 });
    return;
  }
  if (existing === undefined) {
    await writeFile(path, `keys:\n${yamlEntry(entry)}`, { mode: 0o600 });
    return;
  }
  // The entry is appended as an item of the `keys:` list, so that list must be the file's last block.
  if (!/^keys:[ \t]*(#.*)?$/m.test(existing)) throw new Error(`${path} has no 'keys:' list to append to`);
  if (new RegExp(`^\\s*-?\\s*id:\\s*["']?${entry.id}["']?\\s*$`, 'm').test(existing)) throw new Error(`${path} already has a key with id '${entry.id}'`);
  await appendFile(path, `${existing.endsWith('\n') ? '' : '\n'}${yamlEntry(entry)}`);
}

/** `infermesh keys create`: a new key on stdout, its entry on stderr or in `options.file`. */
export async function createKey(options: KeyOptions): Promise<void> {
  checkKeyId(options.id);
  if (options.models !== '*' && options.models.length === 0) throw new Error('--models needs at least one model name, or "*"');
  if (options.burst !== undefined && options.rate === undefined) throw new Error('--burst needs --rate');
  if (!PERIODS.includes(options.quotaPeriod)) throw new Error(`--quota-period must be one of ${PERIODS.join(', ')}`);
  const { rate, burst, quotaRequests: requests, quotaItems: items } = options;

  const key = `imk_${options.id}_${randomBytes(32).toString('base64url')}`;
  const entry: Entry = {
    id: options.id,
    sha256: sha256(key),
    models: options.models,
    admin: options.admin,
    ...(rate !== undefined ? { rate: { per_second: rate, ...(burst !== undefined ? { burst } : {}) } } : {}),
    ...(requests !== undefined || items !== undefined ? { quota: { requests, items, period: options.quotaPeriod } } : {}),
  };
  if (options.file) {
    await addToFile(options.file, entry);
    process.stderr.write(`added key '${entry.id}' to ${options.file}; the router reads it at start. The key (shown only now):\n`);
  } else if (!options.json) {
    process.stderr.write(`add this entry to the router's keys file (ROUTER_API_KEYS_FILE, under 'keys:'):\n${yamlEntry(entry)}The key (shown only now):\n`);
  }
  if (options.json) process.stdout.write(`${JSON.stringify({ key, entry, file: options.file ?? null }, null, 2)}\n`);
  else process.stdout.write(`${key}\n`);
}

/** `infermesh keys hash`: the SHA-256 of the key on stdin. */
export async function hashKey(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const key = Buffer.concat(chunks).toString('utf8').trim();
  if (!KEY.test(key)) throw new Error('stdin does not hold an API key (imk_<id>_<secret>)');
  process.stdout.write(`${sha256(key)}\n`);
}
