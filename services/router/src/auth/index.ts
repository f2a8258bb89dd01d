/** API keys on the public API: the keys file, the key format, and the per-call checks. */
export { accessControlFor, openAccess, ApiKeyAccess, presentedKey, PROBE_METHODS, ADMIN_METHODS, type AccessControl, type Caller } from './access-control.js';
export { createApiKey, sha256Of, keyIdOf, KEY_PREFIX } from './api-key.js';
export { parseKeysFile, loadKeysFile, KeysFileError, type KeyPolicy } from './keys-file.js';
