/** How `infermesh feedback` splits a labels file into lines, whatever the file holds. */
import { describe, expect, it } from 'vitest';
import { readLines, type FileLine } from './lines.js';

/** `bytes` as a stream of chunks of `size` bytes. */
async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function linesOf(bytes: Buffer | string, maxBytes = 64, chunkSize = 5): Promise<FileLine[]> {
  const lines: FileLine[] = [];
  for await (const line of readLines(chunked(Buffer.from(bytes), chunkSize), maxBytes)) lines.push(line);
  return lines;
}

describe('readLines', () => {
  it('numbers each line from 1, a blank line and a last line without its newline included', async () => {
    expect(await linesOf('{"a":1}\n\n{"b":2}')).toEqual([{ number: 1, text: '{"a":1}' }, { number: 2, text: '' }, { number: 3, text: '{"b":2}' }]);
  });

  it('drops the CR of CRLF line endings, even where a chunk ends between CR and LF', async () => {
    expect(await linesOf('abcd\r\nefgh\r\n', 64, 5)).toEqual([{ number: 1, text: 'abcd' }, { number: 2, text: 'efgh' }]);
  });

  it('drops a UTF-8 byte order mark at the start of the file', async () => {
    expect(await linesOf(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"id":"r1"}\r\n')]))).toEqual([{ number: 1, text: '{"id":"r1"}' }]);
  });

  it('reports a line over the limit by its length, without holding it, and reads the lines after it', async () => {
    const lines = await linesOf(`short\n${'x'.repeat(10_000)}\r\nafter\n`, 64, 4096);
    expect(lines).toEqual([{ number: 1, text: 'short' }, { number: 2, tooLong: 10_000 }, { number: 3, text: 'after' }]);
  });

  it('takes a line of exactly the limit, with or without its CR', async () => {
    expect(await linesOf(`${'y'.repeat(64)}\r\n${'z'.repeat(64)}\n${'w'.repeat(65)}\n`)).toEqual([
      { number: 1, text: 'y'.repeat(64) }, { number: 2, text: 'z'.repeat(64) }, { number: 3, tooLong: 65 },
    ]);
  });

  it('reports a file with no newline at all as one line over the limit (a binary file costs one line of memory)', async () => {
    expect(await linesOf(Buffer.alloc(1_000_000, 0x01), 1024, 65_536)).toEqual([{ number: 1, tooLong: 1_000_000 }]);
  });

  it('reports a line that is not valid UTF-8 (a Latin-1 file) instead of turning its bytes into U+FFFD', async () => {
    expect(await linesOf(Buffer.concat([Buffer.from('{"label":"caf'), Buffer.from([0xe9]), Buffer.from('"}\nok\n')]))).toEqual([
      { number: 1, notUtf8: true }, { number: 2, text: 'ok' },
    ]);
  });

  it('keeps a multi-byte character split across chunks whole', async () => {
    expect(await linesOf('héllo wörld\n', 64, 2)).toEqual([{ number: 1, text: 'héllo wörld' }]);
  });
});
