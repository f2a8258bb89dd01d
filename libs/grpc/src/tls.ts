/**
 * Identity and encryption between the mesh's services: mutual TLS with certificates from the
 * mesh's own CA, each naming its holder with a SPIFFE-style URI SAN
 * `spiffe://infermesh/<role>/<name>` (for a worker, the name is its worker id).
 *
 * A certificate's name, not the address a connection goes to, is what is checked: workers
 * announce pod IPs and ports that change, so a hostname check would say nothing; the URI
 * says which service holds the key. Chain validation against the mesh CA stays Node's own.
 */
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';

export const TRUST_DOMAIN = 'infermesh';
export const ROLES = ['router', 'worker', 'preprocessor', 'monitor', 'operator'] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  role: Role;
  name: string;
}

export function identityUri(identity: Identity): string {
  return `spiffe://${TRUST_DOMAIN}/${identity.role}/${identity.name}`;
}

/** The mesh identities a certificate names (its URI SANs in the mesh's trust domain). */
export function identitiesOf(cert: Pick<PeerCertificate, 'subjectaltname'> | undefined): Identity[] {
  if (!cert?.subjectaltname) return [];
  const found: Identity[] = [];
  // Node formats SANs as "DNS:a, URI:spiffe://…, IP Address:…"; URIs cannot hold ", ".
  for (const entry of cert.subjectaltname.split(', ')) {
    // One name segment of the characters ids are made of: no further path, no escapes.
    const match = /^URI:spiffe:\/\/([^/]+)\/([^/]+)\/([A-Za-z0-9._-]+)$/.exec(entry);
    if (!match || match[1] !== TRUST_DOMAIN || !(ROLES as readonly string[]).includes(match[2])) continue;
    found.push({ role: match[2] as Role, name: match[3] });
  }
  return found;
}

/** The mesh's files for this service: the CA that signs every mesh certificate, and this service's own certificate and key. */
export interface MeshTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface MeshTls {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new TlsConfigError(`cannot read the ${what} ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Reads the mesh TLS files named in MESH_TLS_CA_FILE / MESH_TLS_CERT_FILE / MESH_TLS_KEY_FILE;
 * undefined when none is set (plaintext, for one machine on loopback). Some but not all set is
 * an error: a half-configured mesh would silently run in plaintext.
 */
export function meshTlsFromConfig(config: { MESH_TLS_CA_FILE?: string; MESH_TLS_CERT_FILE?: string; MESH_TLS_KEY_FILE?: string }): MeshTls | undefined {
  const files = { caFile: config.MESH_TLS_CA_FILE, certFile: config.MESH_TLS_CERT_FILE, keyFile: config.MESH_TLS_KEY_FILE };
  const set = Object.values(files).filter(Boolean).length;
  if (set === 0) return undefined;
  if (set < 3) throw new TlsConfigError('MESH_TLS_CA_FILE, MESH_TLS_CERT_FILE and MESH_TLS_KEY_FILE go together: set all three (mutual TLS between services) or none (plaintext)');
  return loadMeshTls(files as MeshTlsFiles);
}

export function loadMeshTls(files: MeshTlsFiles): MeshTls {
  return { ca: read(files.caFile, 'mesh CA file'), cert: read(files.certFile, 'certificate file'), key: read(files.keyFile, 'key file') };
}

/** Server credentials of an internal service: mesh TLS with a client certificate required, or plaintext. */
export function meshServerCredentials(tls: MeshTls | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
}

/**
 * Credentials for a call to another mesh service. The peer's certificate must chain to the
 * mesh CA and name `expected` (a role, or a role and name); this service presents its own.
 */
export function meshChannelCredentials(tls: MeshTls | undefined, expected: { role: Role; name?: string }): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.ca, tls.key, tls.cert, {
    checkServerIdentity: (_host, cert) => {
      const names = identitiesOf(cert);
      if (names.some((id) => id.role === expected.role && (expected.name === undefined || id.name === expected.name))) return undefined;
      const wanted = identityUri({ role: expected.role, name: expected.name ?? '*' });
      const got = names.map(identityUri).join(', ') || 'no mesh identity';
      return new Error(`the peer's certificate does not name ${wanted} (it names ${got.slice(0, 300)})`);
    },
  });
}

/**
 * Channel options for a client with meshChannelCredentials. The name a certificate must hold
 * is checked by identity, not by the address; without an override grpc-js would send the
 * address (an IP) as the TLS server name, which RFC 6066 forbids and Node warns about.
 */
export const MESH_CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.ssl_target_name_override': TRUST_DOMAIN };

/** Public TLS files of an endpoint (the router's), and the CA of client certificates when they are required. */
export function publicServerCredentials(options: { certFile?: string; keyFile?: string; clientCaFile?: string }): grpc.ServerCredentials | undefined {
  const { certFile, keyFile, clientCaFile } = options;
  if (!certFile && !keyFile) {
    if (clientCaFile) throw new TlsConfigError('a client CA needs the server certificate and key too');
    return undefined;
  }
  if (!certFile || !keyFile) throw new TlsConfigError('the TLS certificate and key go together: set both');
  const clientCa = clientCaFile ? read(clientCaFile, 'client CA file') : null;
  return grpc.ServerCredentials.createSsl(clientCa, [{ private_key: read(keyFile, 'key file'), cert_chain: read(certFile, 'certificate file') }], clientCa !== null);
}

/** The mesh identities of a call's peer (none over plaintext). */
export function callerIdentities(call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext'>): Identity[] {
  return identitiesOf(call.getAuthContext().sslPeerCertificate);
}
