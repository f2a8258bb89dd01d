/**
 * Just enough of the protobuf wire format to copy an ONNX model's records verbatim: the
 * graph prelude re-encodes only the records it changes, so fields newer than onnx-proto's
 * schema (IR 8) survive in everything else.
 */
/** ModelProto.graph */
export const MODEL_GRAPH = 7;
/** GraphProto's fields the prelude touches. */
export const GRAPH = { node: 1, initializer: 5, input: 11, valueInfo: 13, quantizationAnnotation: 14 } as const;

export interface WireRecord {
  field: number;
  /** The whole record: tag, length if any, and payload. */
  bytes: Uint8Array;
  /** The payload of a length-delimited record. */
  payload?: Uint8Array;
}

/** The top-level records of a message, in order, each with its bytes as they are. */
export function splitRecords(bytes: Uint8Array): WireRecord[] {
  const records: WireRecord[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const start = pos;
    const [tag, afterTag] = readVarint(bytes, pos);
    let payload: Uint8Array | undefined;
    switch (tag % 8) {
      case 0: pos = readVarint(bytes, afterTag)[1]; break;
      case 1: pos = afterTag + 8; break;
      case 2: {
        const [length, afterLength] = readVarint(bytes, afterTag);
        pos = afterLength + length;
        payload = bytes.subarray(afterLength, pos);
        break;
      }
      case 5: pos = afterTag + 4; break;
      default: throw new Error(`protobuf wire type ${tag % 8} at byte ${start} is not used by ONNX`);
    }
    if (pos > bytes.length) throw new Error(`protobuf record at byte ${start} runs past the end`);
    records.push({ field: Math.floor(tag / 8), bytes: bytes.subarray(start, pos), payload });
  }
  return records;
}

function readVarint(bytes: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  for (let shift = 1; pos < bytes.length; shift *= 128) {
    const byte = bytes[pos++];
    value += (byte & 0x7f) * shift;
    if (byte < 0x80) return [value, pos];
  }
  throw new Error('protobuf varint runs past the end');
}

/** A length-delimited record: field `field` holding `payload`. */
export function message(field: number, payload: Uint8Array): Uint8Array {
  return concat([varint(field * 8 + 2), varint(payload.length), payload]);
}

function varint(value: number): Uint8Array {
  const out: number[] = [];
  for (; value >= 0x80; value = Math.floor(value / 128)) out.push((value % 128) | 0x80);
  out.push(value);
  return Uint8Array.from(out);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
