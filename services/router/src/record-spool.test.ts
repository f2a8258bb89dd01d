/** The record spool on a real filesystem: order, bound, restart, torn writes, one router per folder. */
import { mkdtempSync, readdirSync, rmSync, appendFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@infermesh/log';
import { RecordSpool, type RecordBatch } from './record-spool.js';

const logger = createLogger('test', { level: 'silent' });
const dirs: string[] = [];

afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'record-spool-test-'));
  dirs.push(dir);
  return dir;
}

function batch(n: number, records = 3): RecordBatch {
  return { id: `batch-${n}`, model: 'iris', records: Array.from({ length: records }, (_, i) => ({ requestId: `r${n}.${i}`, model: 'iris', version: '1', statusCode: 0 })) };
}

/** Takes every batch out of the spool, oldest first. */
function drain(spool: RecordSpool): string[] {
  const ids: string[] = [];
  for (let head = spool.head(); head; head = spool.head()) {
    ids.push(head.id);
    spool.shift();
  }
  return ids;
}

describe('RecordSpool', () => {
  it('gives back batches oldest first, with their ids, models and records, across segments', () => {
    const spool = RecordSpool.open({ dir: folder(), maxBytes: 1 << 20, segmentBytes: 200 }, logger);
    for (let n = 0; n < 10; n++) expect(spool.append(batch(n))).toBe(true);
    expect(spool.head()).toMatchObject({ id: 'batch-0', model: 'iris', records: [{ requestId: 'r0.0' }, { requestId: 'r0.1' }, { requestId: 'r0.2' }] });
    expect(drain(spool)).toEqual(Array.from({ length: 10 }, (_, n) => `batch-${n}`));
  });

  it('takes batches appended while it is being read, after the ones before them', () => {
    const spool = RecordSpool.open({ dir: folder(), maxBytes: 1 << 20 }, logger);
    spool.append(batch(0));
    expect(spool.head()?.id).toBe('batch-0');
    spool.append(batch(1));
    spool.shift();
    spool.append(batch(2));
    expect(drain(spool)).toEqual(['batch-1', 'batch-2']);
    expect(spool.bytes).toBe(0);
  });

  it('refuses a batch that would take it past maxBytes, and takes batches again once delivered ones are removed', () => {
    const spool = RecordSpool.open({ dir: folder(), maxBytes: 400, segmentBytes: 100 }, logger);
    let taken = 0;
    while (spool.append(batch(taken))) taken++;
    expect(taken).toBeGreaterThan(1);
    expect(spool.bytes).toBeLessThanOrEqual(400);
    expect(drain(spool)).toHaveLength(taken);
    expect(spool.append(batch(99))).toBe(true);
  });

  it('deletes a segment once every batch in it is delivered', () => {
    const dir = folder();
    const spool = RecordSpool.open({ dir, maxBytes: 1 << 20, segmentBytes: 100 }, logger);
    for (let n = 0; n < 5; n++) spool.append(batch(n));
    drain(spool);
    expect(readdirSync(dir).filter((name) => name.endsWith('.seg')).length).toBeLessThanOrEqual(1);
  });

  it('is found again by the next router on the folder, from the first batch not delivered', () => {
    const dir = folder();
    const first = RecordSpool.open({ dir, maxBytes: 1 << 20, segmentBytes: 300 }, logger);
    for (let n = 0; n < 6; n++) first.append(batch(n));
    expect(first.head()?.id).toBe('batch-0');
    first.shift();
    expect(first.head()?.id).toBe('batch-1');
    first.shift();
    // The lock is the same process's here: a restarted router in a container often has the same pid.
    const second = RecordSpool.open({ dir, maxBytes: 1 << 20, segmentBytes: 300 }, logger);
    expect(drain(second)).toEqual(['batch-2', 'batch-3', 'batch-4', 'batch-5']);
  });

  it('delivers every batch of a later outage after a restart that found only an emptied segment', () => {
    const dir = folder();
    const first = RecordSpool.open({ dir, maxBytes: 1 << 20 }, logger);
    for (let n = 0; n < 3; n++) first.append(batch(n));
    // Leaves a cursor at the end of the delivered segment and an empty newer one, which the next start removes.
    expect(drain(first)).toEqual(['batch-0', 'batch-1', 'batch-2']);
    const second = RecordSpool.open({ dir, maxBytes: 1 << 20 }, logger);
    expect(second.head()).toBeUndefined();
    for (let n = 10; n < 13; n++) second.append(batch(n));
    expect(drain(second)).toEqual(['batch-10', 'batch-11', 'batch-12']);
  });

  it('skips a torn last batch (a router stopped mid-write) and keeps the ones before it', () => {
    const dir = folder();
    const first = RecordSpool.open({ dir, maxBytes: 1 << 20 }, logger);
    first.append(batch(0));
    first.append(batch(1));
    const [segment] = readdirSync(dir).filter((name) => name.endsWith('.seg'));
    appendFileSync(join(dir, segment), Buffer.from([200, 0, 0, 0, 7, 1, 2]));
    const second = RecordSpool.open({ dir, maxBytes: 1 << 20 }, logger);
    expect(drain(second)).toEqual(['batch-0', 'batch-1']);
  });

  it('keeps its segments readable by the router\'s user only (records name clients and requests)', () => {
    const dir = join(folder(), 'spool');
    const spool = RecordSpool.open({ dir, maxBytes: 1 << 20 }, logger);
    spool.append(batch(0));
    const [segment] = readdirSync(dir).filter((name) => name.endsWith('.seg'));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, segment)).mode & 0o777).toBe(0o600);
  });

  it('refuses a folder another live process holds', () => {
    const dir = folder();
    // The parent of this test process: alive, and not this process.
    writeFileSync(join(dir, 'lock'), String(process.ppid));
    expect(() => RecordSpool.open({ dir, maxBytes: 1 << 20 }, logger)).toThrow(/in use by process \d+.*ROUTER_RECORD_SPOOL_DIR/);
  });
});
