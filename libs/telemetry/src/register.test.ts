/**
 * The SDK that every service starts with `--import @infermesh/telemetry/register`: tracing is
 * on by default, and the standard OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG variables
 * choose the sampler, for teams that want fewer traces. Each case is a fresh Node process,
 * as a service is.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Whether a root span, and a child of a sampled and of an unsampled remote parent, record. */
function sampled(env: Record<string, string>): { root: boolean; sampledParent: boolean; unsampledParent: boolean } {
  const script = `
    import { trace, context, ROOT_CONTEXT } from '@opentelemetry/api';
    const tracer = trace.getTracer('test');
    const remote = (flags) => trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: flags, isRemote: true });
    const result = {
      root: tracer.startSpan('root').isRecording(),
      sampledParent: tracer.startSpan('child', {}, remote(1)).isRecording(),
      unsampledParent: tracer.startSpan('child', {}, remote(0)).isRecording(),
    };
    console.log(JSON.stringify(result));
  `;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('OTEL_')));
  const out = execFileSync(process.execPath, ['--import', '@infermesh/telemetry/register', '--input-type=module', '-e', script], {
    cwd: ROOT, env: { ...clean, ...env }, encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

describe('the telemetry SDK', () => {
  it('traces every request by default, and follows the caller\'s sampling decision', () => {
    expect(sampled({})).toEqual({ root: true, sampledParent: true, unsampledParent: false });
  });

  it('takes OTEL_TRACES_SAMPLER=always_off', () => {
    expect(sampled({ OTEL_TRACES_SAMPLER: 'always_off' })).toEqual({ root: false, sampledParent: false, unsampledParent: false });
  });

  it('takes OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG', () => {
    expect(sampled({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' })).toEqual({ root: false, sampledParent: true, unsampledParent: false });
    expect(sampled({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1' }).root).toBe(true);
  });
});
