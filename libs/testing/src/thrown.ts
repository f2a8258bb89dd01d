/**
 * The error `run` throws, which must be a `type` (a test reads its message and fields
 * afterwards). Fails when `run` throws something else or nothing at all.
 */
export function thrownBy<E extends Error>(run: () => unknown, type: abstract new (...args: never[]) => E): E {
  try {
    run();
  } catch (error) {
    if (error instanceof type) return error;
    throw new Error(`expected a ${type.name}, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`, { cause: error });
  }
  throw new Error(`expected a ${type.name}, nothing was thrown`);
}
