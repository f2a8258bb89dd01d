/** Where register.ts leaves the running SDK, so shutdown can reach it from any module copy. */
export const SDK_KEY = Symbol.for('infermesh.telemetry.sdk');
