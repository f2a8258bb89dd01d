/**
 * A development CA and mesh certificates, made with the openssl command line (Node can read
 * certificates but not issue them). What `infermesh certs` writes and what tests use; a
 * production mesh gets its certificates from its own CA (cert-manager, Vault, SPIRE) with the
 * same URI SANs.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { identityUri, type Identity } from './tls.js';

export interface IssuedFiles {
  certFile: string;
  keyFile: string;
}

export interface DevCertificates {
  dir: string;
  caFile: string;
  /** Certificate and key of one holder, by file stem. */
  issued: Map<string, IssuedFiles>;
}

export interface Holder {
  /** File stem: <stem>.crt and <stem>.key. */
  stem: string;
  /** The mesh identities it holds (a worker supervisor's certificate names all its workers). */
  identities: Identity[];
}

const CURVE = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') throw new Error('openssl is not installed (Debian/Ubuntu: apt-get install openssl; macOS ships it)', { cause: error });
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString().trim().slice(0, 500) ?? err.message}`, { cause: error });
  }
}

/**
 * Writes ca.crt/ca.key (kept unless `fresh`) and one certificate per holder into `dir`.
 * Each certificate names its identities as URI SANs, plus localhost and 127.0.0.1 so one
 * also serves a public endpoint on this machine; keys are readable by their owner only.
 */
export function issueDevCertificates(dir: string, holders: Holder[], options: { days?: number; fresh?: boolean } = {}): DevCertificates {
  const days = String(options.days ?? 365);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'ca.crt');
  if (options.fresh || !existsSync(caFile) || !existsSync(join(dir, 'ca.key'))) {
    openssl(['req', '-x509', ...CURVE, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', days, '-subj', '/CN=infermesh development CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
    chmodSync(join(dir, 'ca.key'), 0o600);
  }
  const issued = new Map<string, IssuedFiles>();
  for (const holder of holders) {
    if (!/^[A-Za-z0-9_.-]+$/.test(holder.stem)) throw new Error(`'${holder.stem.slice(0, 64)}' is not a file stem (letters, digits, '.', '_', '-')`);
    const sans = [...holder.identities.map((identity) => `URI:${identityUri(identity)}`), 'DNS:localhost', 'IP:127.0.0.1'];
    const ext = `${holder.stem}.ext`;
    writeFileSync(join(dir, ext), [
      `subjectAltName=${sans.join(',')}`,
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth,clientAuth',
    ].join('\n'));
    openssl(['req', '-new', ...CURVE, '-keyout', `${holder.stem}.key`, '-out', `${holder.stem}.csr`, '-subj', `/CN=${holder.stem}`], dir);
    openssl(['x509', '-req', '-in', `${holder.stem}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${holder.stem}.crt`, '-days', days, '-extfile', ext], dir);
    chmodSync(join(dir, `${holder.stem}.key`), 0o600);
    rmSync(join(dir, `${holder.stem}.csr`));
    rmSync(join(dir, ext));
    issued.set(holder.stem, { certFile: join(dir, `${holder.stem}.crt`), keyFile: join(dir, `${holder.stem}.key`) });
  }
  return { dir, caFile, issued };
}

/** The settings a service runs mesh TLS with, for a holder of `certs`. */
export function meshTlsSettings(certs: DevCertificates, stem: string): Record<string, string> {
  const files = certs.issued.get(stem);
  if (!files) throw new Error(`no certificate was issued for ${stem}`);
  return { MESH_TLS_CA_FILE: certs.caFile, MESH_TLS_CERT_FILE: files.certFile, MESH_TLS_KEY_FILE: files.keyFile };
}
