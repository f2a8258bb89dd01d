/**
 * The WatchAlerts streams open now: each transition goes to every one of them. A client that
 * reads slower than alerts come must not hold up the others, nor grow the monitor's memory:
 * each stream writes while the transport takes it, keeps at most `maxBuffered` alerts
 * waiting beyond that, and is ended with RESOURCE_EXHAUSTED when it would keep more (the
 * client reconnects and asks for the alerts firing then).
 */
import { resourceExhausted } from '@infermesh/grpc';
import type { Alert } from '@infermesh/contracts';

/** The part of a grpc-js server stream a watcher writes to. */
export interface AlertSink {
  /** False when the transport's buffer is full: wait for 'drain' before writing more. */
  write(alert: Alert): boolean;
  once(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

export const DEFAULT_MAX_BUFFERED_ALERTS = 256;

class Watcher {
  private readonly waiting: Alert[] = [];
  private draining = false;
  private settled = false;

  constructor(
    private readonly sink: AlertSink,
    private readonly maxBuffered: number,
    private readonly resolve: () => void,
    private readonly reject: (error: Error) => void,
  ) {}

  /**
   * The alerts firing when the stream opened, handed to the transport at once whatever it
   * says: they are at most the evaluator's bound, and a client reading them as fast as it can
   * must not be dropped for their number.
   */
  sendFirst(alerts: readonly Alert[]): void {
    let full = false;
    for (const alert of alerts) full = !this.sink.write(alert) || full;
    if (full) this.waitForDrain();
  }

  send(alert: Alert): void {
    if (this.settled) return;
    if (this.draining) {
      if (this.waiting.length >= this.maxBuffered) {
        this.fail(resourceExhausted(`the stream fell behind by more than ${this.maxBuffered} alerts; call WatchAlerts again (send_firing) to catch up`));
        return;
      }
      this.waiting.push(alert);
      return;
    }
    if (!this.sink.write(alert)) this.waitForDrain();
  }

  /**
   * The stream ends OK after what it was sent: the alerts waiting are handed to the transport
   * at once (at most maxBuffered), and grpc-js sends the status after them. A client that
   * left (`flush` false) is sent nothing more.
   */
  end(flush: boolean): void {
    if (this.settled) return;
    if (flush) for (const alert of this.waiting.splice(0)) this.sink.write(alert);
    this.settle();
    this.resolve();
  }

  private fail(error: Error): void {
    this.settle();
    this.waiting.length = 0;
    this.reject(error);
  }

  private settle(): void {
    this.settled = true;
    this.sink.off('drain', this.onDrain);
  }

  private readonly onDrain = () => {
    this.draining = false;
    this.flush();
  };

  private flush(): void {
    while (this.waiting.length > 0 && !this.draining) {
      if (!this.sink.write(this.waiting.shift() as Alert)) this.waitForDrain();
    }
  }

  private waitForDrain(): void {
    this.draining = true;
    this.sink.once('drain', this.onDrain);
  }
}

export class AlertWatchers {
  private readonly watchers = new Set<Watcher>();
  private closed = false;

  constructor(private readonly maxBuffered = DEFAULT_MAX_BUFFERED_ALERTS) {}

  /**
   * Serves one stream: `first` (the alerts firing now, when asked), then every transition
   * sent. Resolves when the client leaves (`signal`) or the watchers close (the monitor
   * stops); rejects with RESOURCE_EXHAUSTED when the client falls too far behind.
   */
  serve(sink: AlertSink, signal: AbortSignal, first: readonly Alert[] = []): Promise<void> {
    if (this.closed || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        this.watchers.delete(watcher);
        signal.removeEventListener('abort', onAbort);
      };
      const watcher = new Watcher(sink, this.maxBuffered, () => (done(), resolve()), (error) => (done(), reject(error)));
      const onAbort = () => watcher.end(false);
      signal.addEventListener('abort', onAbort, { once: true });
      this.watchers.add(watcher);
      // Added and sent in one turn: no transition falls between the firing list and the stream.
      watcher.sendFirst(first);
    });
  }

  send(alert: Alert): void {
    for (const watcher of [...this.watchers]) watcher.send(alert);
  }

  /** Streams open now. */
  get size(): number {
    return this.watchers.size;
  }

  /** Ends every stream (OK) and takes no more: the monitor is stopping. */
  close(): void {
    this.closed = true;
    for (const watcher of [...this.watchers]) watcher.end(true);
  }
}
