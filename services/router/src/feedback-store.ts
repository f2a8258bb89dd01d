/**
 * Stores one request's true labels as a Feedback event on the FEEDBACK stream, once: the
 * message id is a digest of (client, model, request id), and JetStream keeps one message
 * per id within the stream's duplicate window (a day, libs/bus), so a second label for a
 * request is answered ALREADY_EXISTS, and a retried publish whose ack was lost is safe.
 *
 * The router does not wait on the monitor: an item is answered once the stream has it.
 * While NATS is unreachable each item is answered UNAVAILABLE at once (known from the
 * connection's status), and a publish that does not get its ack in time is UNAVAILABLE too;
 * the client sends it again.
 */
import { createHash } from 'node:crypto';
import { events, type Bus } from '@infermesh/bus';
import type { Feedback, FeedbackResult } from '@infermesh/contracts';
import { Status } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import { quote } from './inference-service.js';

/** One checked FeedbackItem, with who sent it. */
export interface LabelledRequest {
  model: string;
  requestId: string;
  labels: string[];
  /** The API key id of the caller ('' when the API is open). */
  clientId: string;
}

/** The message id of a request's feedback: the stream stores one message per (client, model, request id). */
export function feedbackMessageId(clientId: string, model: string, requestId: string): string {
  return createHash('sha256').update(`${clientId}\0${model}\0${requestId}`).digest('hex');
}

/**
 * Thrown by a publish larger than the server's max_payload (its INFO): with the defaults (1 MiB)
 * the largest item (1024 labels of 256 bytes, about 265 KB) fits; a server set lower may not.
 */
const isTooLarge = (error: unknown) => /max_payload/i.test((error as Error)?.message ?? '');

const STORED: FeedbackResult = { statusCode: Status.OK, errorMessage: '' };
const RETRY = 'sending it again is safe: a request is labelled once';

export class FeedbackStore {
  private connected = true;

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {
    void this.followConnection();
  }

  /** Publishes `request`'s labels and answers how it went; never throws. */
  async store(request: LabelledRequest, traceparent: string): Promise<FeedbackResult> {
    const { model, requestId, clientId } = request;
    if (!this.connected || this.bus.nc.isClosed()) return unavailable(`NATS is unreachable; ${RETRY}`);
    const event: Feedback = { model, requestId, labels: request.labels, clientId, receivedMs: String(Date.now()), traceparent };
    try {
      const ack = await this.bus.publishDurable(this.bus.subjects.feedback(model), events.feedback, event, feedbackMessageId(clientId, model, requestId));
      if (ack.duplicate) return { statusCode: Status.ALREADY_EXISTS, errorMessage: `request ${quote(requestId)} of model ${quote(model)} was already labelled` };
      return STORED;
    } catch (error) {
      // Refused by the client before anything is sent: the same bytes would be refused again.
      if (isTooLarge(error)) {
        const maxPayload = this.bus.nc.info?.max_payload ?? 0;
        return {
          statusCode: Status.RESOURCE_EXHAUSTED,
          errorMessage: `feedback of ${events.feedback.encode(event).length} bytes is larger than the NATS server takes in one message (max_payload ${maxPayload} bytes): send fewer or shorter labels`,
        };
      }
      // A timeout (the connection dropped with the publish on its way), no stream, a closed
      // connection. Logged by the caller once per call (counts), not once per item.
      return unavailable(`feedback not stored, JetStream did not take it (${(error as Error).message.slice(0, 200)}); ${RETRY}`);
    }
  }

  private async followConnection(): Promise<void> {
    for await (const status of this.bus.nc.status()) {
      if (status.type === 'disconnect') this.connected = false;
      else if (status.type === 'reconnect') this.connected = true;
    }
    this.logger.debug('NATS connection closed: feedback is answered UNAVAILABLE');
  }
}

function unavailable(message: string): FeedbackResult {
  return { statusCode: Status.UNAVAILABLE, errorMessage: message };
}
