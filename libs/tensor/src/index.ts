export { DATATYPES, ELEMENT_SIZE, ARRAY_TYPE, isDatatype, type Datatype, type NumericArray } from './datatype.js';
export { TensorError } from './errors.js';
export { elementCount, parseShape, shapeMatches, formatShape } from './shape.js';
export { decodeRaw, encodeRaw, decodeBytesElements, encodeBytesElements, type Tensor } from './codec.js';
export { decodeContents, hasContents, contentsField, type TypedContents } from './contents.js';
export { decodeInputs, type WireInput } from './request.js';
