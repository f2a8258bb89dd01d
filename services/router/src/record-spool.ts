/**
 * A bounded on-disk queue of prediction-record batches, for while JetStream is unreachable:
 * records of a long NATS outage must neither grow the router's memory nor be lost, and a
 * router restarted during the outage finds them again.
 *
 * The spool is a folder of segment files, each a run of frames
 * `u32 length | u8 id length | id | PredictionBatch bytes`. Batches are appended to the newest
 * segment and read from the oldest; a segment is deleted once every batch in it was
 * delivered, and a `cursor` file says how many batches of the oldest segment were, so a
 * restart resumes there. Writes are synchronous: they happen only while JetStream is away, a
 * batch is a few tens of KB, and one writer with no pending promises keeps the order plain.
 * Nothing is fsynced: a router that crashes keeps what it wrote (the page cache survives
 * it); a machine that crashes may lose the last writes.
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { events } from '@infermesh/bus';
import type { PredictionRecord } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';

/** A batch of one model's records and the message id it is published with, whatever the attempt. */
export interface RecordBatch {
  id: string;
  model: string;
  records: PredictionRecord[];
}

export interface RecordSpoolOptions {
  dir: string;
  /** Bytes of segment files at most; a batch that would go beyond is refused (the caller counts it dropped). */
  maxBytes: number;
  /** Bytes per segment before the next one is started (a quarter of maxBytes, 4 MiB at most, unless set). */
  segmentBytes?: number;
}

const SEGMENT = /^(\d{12})\.seg$/;
const FRAME_HEADER = 5;

/**
 * The spool folder when ROUTER_RECORD_SPOOL_DIR is not set: under the OS temp folder, which
 * is writable where the root filesystem is not (the Kubernetes manifests mount an emptyDir
 * there, which outlives a container restart), one folder per port so that two routers on a
 * machine never share one. A router on port 0 (tests) has no stable name to be found again
 * by: it gets a fresh folder.
 */
export function defaultSpoolDir(port: number): string {
  if (port === 0) return mkdtempSync(join(tmpdir(), 'infermesh-router-spool-'));
  return join(tmpdir(), `infermesh-router-spool-${port}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class RecordSpool {
  private readonly segmentBytes: number;
  /** Segment numbers on disk, oldest first; the last is the one written to. */
  private readonly segments: number[];
  private writer: { number: number; fd: number; bytes: number } | undefined;
  private reader: { number: number; batches: RecordBatch[]; next: number } | undefined;
  private totalBytes = 0;
  /**
   * The highest segment number used so far, the cursor's included: a new segment numbered
   * again as a removed one that the cursor still names would have its first batches taken
   * as delivered and never published.
   */
  private lastNumber: number;

  private constructor(private readonly options: RecordSpoolOptions, private readonly logger: Logger) {
    this.segmentBytes = options.segmentBytes ?? Math.min(4 * 1024 * 1024, Math.max(64 * 1024, Math.floor(options.maxBytes / 4)));
    // Records name clients (API key ids) and requests: readable by the router's user only.
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    this.lock();
    this.segments = readdirSync(options.dir).flatMap((name) => SEGMENT.exec(name)?.[1] ?? []).map(Number).sort((a, b) => a - b);
    for (const number of this.segments) this.totalBytes += statSync(this.path(number)).size;
    this.lastNumber = Math.max(this.segments.at(-1) ?? 0, this.readCursor()?.segment ?? 0);
  }

  /** Opens (or creates) the spool in `options.dir`; refuses a folder another live router holds. */
  static open(options: RecordSpoolOptions, logger: Logger): RecordSpool {
    return new RecordSpool(options, logger);
  }

  get dir(): string {
    return this.options.dir;
  }

  /** Bytes of batches spooled and not yet all delivered. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Appends a batch; false (nothing written) when the spool would exceed its bound or the write fails. */
  append(batch: RecordBatch): boolean {
    const id = Buffer.from(batch.id);
    const body = events.predictionBatch.encode({ records: batch.records });
    const frame = Buffer.allocUnsafe(FRAME_HEADER + id.length + body.length);
    frame.writeUInt32LE(1 + id.length + body.length, 0);
    frame.writeUInt8(id.length, 4);
    id.copy(frame, FRAME_HEADER);
    frame.set(body, FRAME_HEADER + id.length);
    if (this.totalBytes + frame.length > this.options.maxBytes) return false;
    try {
      if (!this.writer || this.writer.bytes >= this.segmentBytes) this.startSegment();
      writeSync(this.writer!.fd, frame);
    } catch (error) {
      this.logger.error({ err: error, dir: this.options.dir }, 'could not write to the prediction record spool');
      return false;
    }
    this.writer!.bytes += frame.length;
    this.totalBytes += frame.length;
    return true;
  }

  /** The oldest batch not yet delivered, or undefined when the spool is empty. */
  head(): RecordBatch | undefined {
    for (;;) {
      if (this.reader && this.reader.next < this.reader.batches.length) return this.reader.batches[this.reader.next];
      if (this.reader) this.removeSegment(this.reader.number);
      const oldest = this.segments[0];
      if (oldest === undefined) return undefined;
      if (this.writer?.number === oldest) {
        if (this.writer.bytes === 0) return undefined;
        // The reader has caught up with the writer: new batches go to a new segment.
        this.startSegment();
      }
      this.reader = { number: oldest, batches: this.readSegment(oldest), next: this.cursorOf(oldest) };
    }
  }

  /** Marks the head batch delivered. */
  shift(): void {
    if (!this.reader || this.reader.next >= this.reader.batches.length) return;
    this.reader.next++;
    writeFileSync(join(this.options.dir, 'cursor'), `${this.reader.number} ${this.reader.next}`);
  }

  private path(number: number): string {
    return join(this.options.dir, `${String(number).padStart(12, '0')}.seg`);
  }

  private startSegment(): void {
    const number = ++this.lastNumber;
    // Opened before the current one is closed: a failed open leaves the writer usable.
    const fd = openSync(this.path(number), 'a', 0o600);
    if (this.writer) closeSync(this.writer.fd);
    this.writer = { number, fd, bytes: 0 };
    this.segments.push(number);
  }

  private removeSegment(number: number): void {
    const size = statSync(this.path(number), { throwIfNoEntry: false })?.size ?? 0;
    // Counted off only once gone: a removal that fails is tried again by the next head().
    rmSync(this.path(number), { force: true });
    this.totalBytes -= size;
    this.segments.splice(this.segments.indexOf(number), 1);
    this.reader = undefined;
  }

  private readSegment(number: number): RecordBatch[] {
    const data = readFileSync(this.path(number));
    const batches: RecordBatch[] = [];
    let offset = 0;
    try {
      while (offset + FRAME_HEADER <= data.length) {
        const length = data.readUInt32LE(offset);
        if (offset + 4 + length > data.length) break;
        const idLength = data.readUInt8(offset + 4);
        const id = data.toString('utf8', offset + FRAME_HEADER, offset + FRAME_HEADER + idLength);
        const { records } = events.predictionBatch.decode(data.subarray(offset + FRAME_HEADER + idLength, offset + 4 + length));
        batches.push({ id, model: records[0]?.model ?? '', records: records as PredictionRecord[] });
        offset += 4 + length;
      }
    } catch (error) {
      this.logger.error({ err: error, segment: this.path(number), offset }, 'prediction record spool segment is damaged; the rest of it is skipped');
      return batches;
    }
    // A router that stopped in the middle of a write leaves a torn last frame.
    if (offset < data.length) this.logger.warn({ segment: this.path(number), bytes: data.length - offset }, 'prediction record spool segment ends in a partial batch; skipped');
    return batches;
  }

  private cursorOf(number: number): number {
    const cursor = this.readCursor();
    return cursor?.segment === number ? cursor.delivered : 0;
  }

  private readCursor(): { segment: number; delivered: number } | undefined {
    const cursor = join(this.options.dir, 'cursor');
    if (!existsSync(cursor)) return undefined;
    const [segment, delivered] = readFileSync(cursor, 'utf8').split(' ').map(Number);
    return Number.isInteger(segment) && Number.isInteger(delivered) ? { segment, delivered } : undefined;
  }

  /** One router per spool: two would deliver (and delete) each other's batches. */
  private lock(): void {
    const lock = join(this.options.dir, 'lock');
    if (existsSync(lock)) {
      const pid = Number(readFileSync(lock, 'utf8'));
      // A container's router is often pid 1 on every start: its own pid is a lock it left.
      if (Number.isInteger(pid) && pid !== process.pid && isAlive(pid)) {
        throw new Error(`the prediction record spool ${this.options.dir} is in use by process ${pid}; give each router its own ROUTER_RECORD_SPOOL_DIR`);
      }
    }
    writeFileSync(lock, String(process.pid));
  }
}
