/**
 * The lines of a text file (labels for `infermesh feedback`, rows for `infermesh profile`),
 * read from its bytes with each line bounded: a line longer than the limit is passed over as
 * it streams (its length counted, never held), so a binary file, or one with no newline at
 * all, costs no more memory than one line of the limit. (readline holds a whole line before
 * anyone can look at its length, and dies on one over V8's longest string.)
 *
 * Lines end at LF, and a CR before it is dropped (files written on Windows). A UTF-8 byte
 * order mark at the start of the file is dropped. A line that is not valid UTF-8 is reported,
 * not decoded: decoding would turn a Latin-1 label into U+FFFD, a label that matches nothing.
 */
import { isUtf8 } from 'node:buffer';

export type FileLine =
  | { number: number; text: string }
  /** Longer than the limit: its length in bytes (its CR not counted). */
  | { number: number; tooLong: number }
  | { number: number; notUtf8: true };

const LF = 0x0a;
const CR = 0x0d;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** Each line of `chunks` (numbered from 1), a line of more than `maxBytes` bytes reported by its length alone. */
export async function* readLines(chunks: AsyncIterable<Buffer>, maxBytes: number): AsyncGenerator<FileLine> {
  let number = 0;
  let parts: Buffer[] = [];
  let held = 0;
  /** Bytes of the current line, held or not. */
  let length = 0;
  let last = -1;

  const finish = (): FileLine => {
    number++;
    let bytes = parts.length === 1 ? parts[0] : Buffer.concat(parts, held);
    if (last === CR) {
      // Held (a line of the limit and its CR) or not (a line over it).
      if (held === length) bytes = bytes.subarray(0, bytes.length - 1);
      length--;
    }
    // The start of a line is always held.
    if (number === 1 && bytes.subarray(0, 3).equals(BOM)) {
      bytes = bytes.subarray(3);
      length -= 3;
    }
    const line: FileLine = length > maxBytes ? { number, tooLong: length } : !isUtf8(bytes) ? { number, notUtf8: true } : { number, text: bytes.toString('utf8') };
    parts = [];
    held = 0;
    length = 0;
    last = -1;
    return line;
  };

  const take = (segment: Buffer) => {
    if (segment.length === 0) return;
    length += segment.length;
    last = segment[segment.length - 1];
    // Room for the limit, a BOM and a CR; past that the line is only counted.
    const room = maxBytes + BOM.length + 1 - held;
    if (room <= 0) return;
    const kept = segment.length <= room ? segment : segment.subarray(0, room);
    // Copied: a chunk's buffer may be reused by the stream.
    parts.push(Buffer.from(kept));
    held += kept.length;
  };

  for await (const chunk of chunks) {
    let from = 0;
    for (let at = chunk.indexOf(LF); at >= 0; at = chunk.indexOf(LF, from)) {
      take(chunk.subarray(from, at));
      from = at + 1;
      yield finish();
    }
    take(chunk.subarray(from));
  }
  // A last line without its newline.
  if (length > 0) yield finish();
}
