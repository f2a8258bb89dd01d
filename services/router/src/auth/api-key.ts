/**
 * API keys: `imk_<keyId>_<secret>`, the secret 32 random bytes in base64url. The router keeps
 * only each key's SHA-256. A slow password hash (bcrypt, scrypt, argon2) protects guessable
 * secrets from a stolen hash list; a 256-bit random secret cannot be guessed from its hash
 * however fast the hash is, so a slow one would only cost time on every call.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const KEY_PREFIX = 'imk_';
/** No '_': the key id ends at the first '_' after the prefix (the secret may contain '_'). */
export const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;
const SECRET_BYTES = 32;
/** 32 bytes in base64url without padding. */
const SECRET_LENGTH = 43;
const SECRET_PATTERN = /^[A-Za-z0-9_-]+$/;
/** The longest well-formed key; anything longer is refused before it is hashed. */
export const MAX_KEY_LENGTH = KEY_PREFIX.length + 64 + 1 + SECRET_LENGTH;
export const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

/** A new key for `id`, and the digest that goes into the keys file. */
export function createApiKey(id: string): { key: string; sha256: string } {
  if (!KEY_ID_PATTERN.test(id)) throw new Error('a key id is 1 to 64 letters, digits and dashes, starting with a letter or digit');
  const key = `${KEY_PREFIX}${id}_${randomBytes(SECRET_BYTES).toString('base64url')}`;
  return { key, sha256: sha256Of(key) };
}

/** The hex SHA-256 of a whole key, as the keys file stores it. */
export function sha256Of(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** The key id a presented key names, or undefined when it is not shaped like a key. */
export function keyIdOf(presented: string): string | undefined {
  if (presented.length > MAX_KEY_LENGTH || !presented.startsWith(KEY_PREFIX)) return undefined;
  const end = presented.indexOf('_', KEY_PREFIX.length);
  if (end < 0) return undefined;
  const id = presented.slice(KEY_PREFIX.length, end);
  const secret = presented.slice(end + 1);
  if (!KEY_ID_PATTERN.test(id) || secret.length !== SECRET_LENGTH || !SECRET_PATTERN.test(secret)) return undefined;
  return id;
}

/** Whether `presented` hashes to `digest` (hex), compared in constant time. */
export function matchesDigest(presented: string, digest: Buffer): boolean {
  const actual = createHash('sha256').update(presented, 'utf8').digest();
  return actual.length === digest.length && timingSafeEqual(actual, digest);
}
