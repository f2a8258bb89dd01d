/**
 * Who may do what on the mesh's NATS: one NATS user per role, each allowed only the subjects
 * its role publishes and reads. nats-server enforces it; `natsAuthorization` writes the
 * server's `authorization` block for a set of passwords, so a test, `infermesh up` and the
 * deploy files grant the same permissions (deploy/ has a test that compares them).
 *
 * - workers publish heartbeats, and read repository control requests (a reply goes to the
 *   asking router's inbox, which nats-server lets a subscriber answer: allow_responses);
 * - routers read heartbeats, send control requests to workers, and publish prediction records and feedback (JetStream publish
 *   needs the streams' INFO/CREATE API to make sure the streams exist);
 * - the monitor reads heartbeats, prediction records and feedback (JetStream consumer and
 *   key-value API) and publishes alerts, nothing else on the mesh's own subjects;
 * - operators (the CLI) read heartbeats and read and write the traffic policies (`<prefix>_traffic`),
 *   which routers only read (a watch: an ordered consumer on the bucket's stream).
 * No role but the monitor may read records, and no role but workers may publish heartbeats.
 */
import { streamName, trafficBucket } from './subjects.js';

export const NATS_ROLES = ['worker', 'router', 'monitor', 'operator'] as const;
export type NatsRole = (typeof NATS_ROLES)[number];

export interface Permissions {
  publish: string[];
  subscribe: string[];
  /** May answer the requests it reads on their reply subjects (nats-server's allow_responses), with no other publish. */
  allowResponses?: boolean;
}

/**
 * Each user's own inbox prefix. Replies to requests (JetStream API calls, publish
 * acknowledgements) and the records a pull consumer delivers come back on inboxes; with the
 * shared `_INBOX.>` any user could read the monitor's deliveries. The services connect with
 * this prefix (libs/bus natsConnectOptions), and each user may read only its own.
 */
export function inboxPrefixOf(user: string): string {
  return `_INBOX_${user.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export function rolePermissions(role: NatsRole, prefix: string, user: string = role): Permissions {
  const predictions = streamName(prefix, 'PREDICTIONS');
  const feedback = streamName(prefix, 'FEEDBACK');
  const heartbeats = `${prefix}.worker.heartbeat.*`;
  const INBOX = `${inboxPrefixOf(user)}.>`;
  const traffic = `KV_${trafficBucket(prefix)}`;
  // Watching the policies: an ordered consumer, made (again after a reconnect), pulled and deleted by its reader.
  const trafficWatch = [`$JS.API.STREAM.INFO.${traffic}`, `$JS.API.STREAM.CREATE.${traffic}`, `$JS.API.CONSUMER.CREATE.${traffic}.>`, `$JS.API.CONSUMER.MSG.NEXT.${traffic}.>`, `$JS.API.CONSUMER.INFO.${traffic}.>`, `$JS.API.CONSUMER.DELETE.${traffic}.>`];
  switch (role) {
    case 'worker':
      return { publish: [`${prefix}.worker.heartbeat.>`], subscribe: [`${prefix}.control.>`, INBOX], allowResponses: true };
    case 'router':
      return {
        publish: [
          `${prefix}.predictions.>`, `${prefix}.feedback.>`, `${prefix}.control.>`, '$JS.API.INFO',
          `$JS.API.STREAM.INFO.${predictions}`, `$JS.API.STREAM.CREATE.${predictions}`, `$JS.API.STREAM.INFO.${feedback}`, `$JS.API.STREAM.CREATE.${feedback}`,
          ...trafficWatch,
        ],
        subscribe: [heartbeats, INBOX],
      };
    case 'monitor':
      // The monitor owns the stream's consumers and its own key-value state.
      return { publish: ['$JS.API.>', '$JS.ACK.>', '$JS.FC.>', '$KV.>', `${prefix}.alerts.>`], subscribe: [heartbeats, INBOX] };
    case 'operator':
      return { publish: ['$JS.API.INFO', `$JS.API.STREAM.INFO.${traffic}`, `$JS.API.STREAM.CREATE.${traffic}`, `$JS.API.STREAM.MSG.GET.${traffic}`, `$KV.${trafficBucket(prefix)}.>`], subscribe: [heartbeats, INBOX] };
  }
}

/** nats-server reads an empty allow list as "no restriction": nothing allowed is a deny of everything. */
function rule(allow: string[]): { allow: string[] } | { deny: string[] } {
  return allow.length > 0 ? { allow } : { deny: ['>'] };
}

/** A password in the config itself, or the environment variable nats-server reads it from (deploy/ keeps passwords in a Secret). */
export type NatsPassword = string | { env: string };

/** The nats-server `authorization { users = [...] }` block for these users, in its own config syntax (JSON is valid there). */
export function natsAuthorization(users: { user: string; password: NatsPassword; role: NatsRole | 'admin' }[], prefix: string): string {
  const entries = users.map(({ user, password, role }) => {
    const permissions = role === 'admin' ? undefined : rolePermissions(role, prefix, user);
    return {
      user,
      password: typeof password === 'string' ? password : `\u0000${password.env}`,
      ...(permissions
        ? { permissions: { publish: rule(permissions.publish), subscribe: rule(permissions.subscribe), ...(permissions.allowResponses ? { allow_responses: true } : {}) } }
        : {}),
    };
  });
  // A variable reference is unquoted in nats-server's syntax: "$NAME" would be the literal text.
  return `authorization ${JSON.stringify({ users: entries }, null, 2).replace(/"\\u0000([A-Z0-9_]+)"/g, '$$$1')}\n`;
}

