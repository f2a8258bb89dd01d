/** NATS credentials and TLS of a service's connection, read from the files its settings name. */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { inboxPrefixOf } from '@infermesh/contracts';

export interface NatsAuthSettings {
  NATS_USER?: string;
  NATS_PASSWORD_FILE?: string;
  NATS_CREDS_FILE?: string;
  NATS_TLS_CA_FILE?: string;
}

export class NatsAuthError extends Error {
  override readonly name = 'NatsAuthError';
}

function read(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new NatsAuthError(`cannot read the ${what} ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** Connection options from the service's settings: credentials read from files, TLS when a CA is named. */
export function natsConnectOptions(settings: NatsAuthSettings): Partial<ConnectionOptions> {
  const options: Partial<ConnectionOptions> = {};
  if (settings.NATS_CREDS_FILE) {
    if (settings.NATS_USER) throw new NatsAuthError('NATS_CREDS_FILE and NATS_USER are two ways to authenticate: set one');
    const creds = read(settings.NATS_CREDS_FILE, 'NATS credentials file');
    options.authenticator = credsAuthenticator(new TextEncoder().encode(creds));
  } else if (settings.NATS_USER) {
    if (!settings.NATS_PASSWORD_FILE) throw new NatsAuthError('NATS_USER needs NATS_PASSWORD_FILE (a file holding the password)');
    options.user = settings.NATS_USER;
    options.pass = read(settings.NATS_PASSWORD_FILE, 'NATS password file');
    // The user's own inboxes: the only ones its permissions let it read.
    options.inboxPrefix = inboxPrefixOf(settings.NATS_USER);
  } else if (settings.NATS_PASSWORD_FILE) {
    throw new NatsAuthError('NATS_PASSWORD_FILE needs NATS_USER');
  }
  if (settings.NATS_TLS_CA_FILE) options.tls = { caFile: settings.NATS_TLS_CA_FILE };
  return options;
}

/** How the connection is secured, for the start-up log line (never the secret). */
export function describeNatsAuth(settings: NatsAuthSettings): string {
  const who = settings.NATS_CREDS_FILE ? 'credentials file' : settings.NATS_USER ? `user ${settings.NATS_USER}` : 'no credentials';
  return `${who}, ${settings.NATS_TLS_CA_FILE ? 'TLS' : 'plaintext'}`;
}
