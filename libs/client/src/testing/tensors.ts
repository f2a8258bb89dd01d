/** Tensors the client's tests send. */
import { tensor } from '../tensor.js';
import type { Tensor } from '../types.js';

/** One tensor of every datatype, with the values at its edges. */
export function everyDatatype(): Tensor[] {
  return [
    tensor.bool('bool', [2, 2], [true, false, false, true]),
    tensor.uint8('uint8', [3], [0, 1, 255]),
    tensor.uint16('uint16', [3], [0, 1, 65535]),
    tensor.uint32('uint32', [2], [0, 4294967295]),
    tensor.uint64('uint64', [2], [0n, 18446744073709551615n]),
    tensor.int8('int8', [3], [-128, 0, 127]),
    tensor.int16('int16', [3], [-32768, 0, 32767]),
    tensor.int32('int32', [3], [-2147483648, 0, 2147483647]),
    tensor.int64('int64', [1, 3], [-9223372036854775808n, 9007199254740993n, 9223372036854775807n]),
    tensor.fp16('fp16', [4], [1, -2.5, 65504, 0.0000610352]),
    tensor.fp32('fp32', [2, 3], [0.1, -1.5, 3.4028234663852886e38, 1e-45, 0, -0]),
    tensor.fp64('fp64', [2], [Math.PI, -Number.MAX_VALUE]),
    tensor.bytes('bytes', [3], ['hello', '', 'ünïcode ✓']),
  ];
}

/** What the same tensor looks like coming back: BYTES elements as Buffers. */
export function answered(t: Tensor): Tensor {
  return t.datatype === 'BYTES' ? { ...t, data: (t.data as (string | Uint8Array)[]).map((e) => Buffer.from(e)) } : t;
}

