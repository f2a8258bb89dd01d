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
import { parseArgs } from 'node:util';

export const KEYS_USAGE = `usage: infermesh keys create --id ID [--models a,b] [--admin] [--rate N] [--burst N]
                            [--quota-requests N] [--quota-items N] [--quota-period minute|hour|day|month] [--file PATH]
       infermesh keys hash < key`;

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const KEY = /^imk_[A-Za-z0-9][A-Za-z0-9-]{0,63}_[A-Za-z0-9_-]{43}$/;
const PERIODS = ['minute', 'hour', 'day', 'month'];

const sha256 = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

function positive(name: string, value: string | undefined, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got '${value.slice(0, 40)}'`);
  return n;
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

async function create(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      id: { type: 'string' },
      models: { type: 'string', default: '*' },
      admin: { type: 'boolean', default: false },
      rate: { type: 'string' },
      burst: { type: 'string' },
      'quota-requests': { type: 'string' },
      'quota-items': { type: 'string' },
      'quota-period': { type: 'string', default: 'day' },
      file: { type: 'string' },
    },
    allowPositionals: false,
  });
  if (!values.id || !KEY_ID.test(values.id)) throw new Error('--id is required: 1 to 64 letters, digits and dashes, starting with a letter or digit');
  const models = values.models.trim() === '*' ? '*' : values.models.split(',').map((m) => m.trim()).filter(Boolean);
  if (models !== '*' && models.length === 0) throw new Error('--models needs at least one model name, or "*"');
  const rate = positive('rate', values.rate, false);
  const burst = positive('burst', values.burst, true);
  if (burst !== undefined && rate === undefined) throw new Error('--burst needs --rate');
  const requests = positive('quota-requests', values['quota-requests'], true);
  const items = positive('quota-items', values['quota-items'], true);
  if (!PERIODS.includes(values['quota-period'])) throw new Error(`--quota-period must be one of ${PERIODS.join(', ')}`);

  const key = `imk_${values.id}_${randomBytes(32).toString('base64url')}`;
  const entry: Entry = {
    id: values.id,
    sha256: sha256(key),
    models,
    admin: values.admin,
    ...(rate !== undefined ? { rate: { per_second: rate, ...(burst !== undefined ? { burst } : {}) } } : {}),
    ...(requests !== undefined || items !== undefined ? { quota: { requests, items, period: values['quota-period'] } } : {}),
  };
  if (values.file) {
    await addToFile(values.file, entry);
    process.stderr.write(`added key '${entry.id}' to ${values.file}; the router reads it at start. The key (shown only now):\n`);
  } else {
    process.stderr.write(`add this entry to the router's keys file (ROUTER_API_KEYS_FILE, under 'keys:'):\n${yamlEntry(entry)}The key (shown only now):\n`);
  }
  process.stdout.write(`${key}\n`);
}

async function hash(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const key = Buffer.concat(chunks).toString('utf8').trim();
  if (!KEY.test(key)) throw new Error('stdin does not hold an API key (imk_<id>_<secret>)');
  process.stdout.write(`${sha256(key)}\n`);
}

export async function keys(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === 'create') await create(rest);
  else if (action === 'hash') await hash();
  else {
    console.error(KEYS_USAGE);
    return 2;
  }
  return 0;
}
