/**
 * Input that cannot be read as the tensor it claims to be. Services map it to
 * INVALID_ARGUMENT; the message names the tensor and what was expected.
 */
export class TensorError extends Error {
  override readonly name = 'TensorError';
  /** INVALID_ARGUMENT: how the services' status table (libs/grpc) reads it. */
  readonly grpcCode = 3;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
