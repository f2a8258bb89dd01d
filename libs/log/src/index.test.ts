/**
 * What a service's logger writes to stdout. createLogger takes pino options but no
 * destination, so each test runs a small script in a child process with the built
 * @infermesh/log and reads the JSON lines it prints.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

type Line = Record<string, unknown>;

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';

/**
 * Runs `body` as an ES module in which `createLogger` and `inSpan(fn)` (fn runs with a
 * span of TRACE_ID / SPAN_ID active) are defined, and returns the lines it logged.
 */
async function logged(body: string, env: Record<string, string> = {}): Promise<Line[]> {
  const script = `
    import { context, trace, TraceFlags } from '@opentelemetry/api';
    import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
    import { createLogger } from '@infermesh/log';
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const inSpan = (fn) => context.with(
      trace.setSpanContext(context.active(), { traceId: '${TRACE_ID}', spanId: '${SPAN_ID}', traceFlags: TraceFlags.SAMPLED }),
      fn,
    );
    ${body}
  `;
  const { LOG_LEVEL: _ignored, ...inherited } = process.env;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: PACKAGE_DIR, env: { ...inherited, ...env }, timeout: 20_000 });
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Line);
}

describe('createLogger', () => {
  it('writes one JSON object per line with the level name, an ISO time, the service and the message', async () => {
    const lines = await logged(`createLogger('router').info({ model: 'iris' }, 'model ready');`);
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatchObject({ level: 'info', service: 'router', model: 'iris', msg: 'model ready' });
    expect(typeof line.time).toBe('string');
    expect(new Date(line.time as string).toISOString()).toBe(line.time);
  });

  it('adds the active span\'s trace_id and span_id to a line written inside it', async () => {
    const [line] = await logged(`const log = createLogger('worker'); inSpan(() => log.info('inside'));`);
    expect(line).toMatchObject({ msg: 'inside', trace_id: TRACE_ID, span_id: SPAN_ID });
  });

  it('keeps the span\'s ids on lines written after an await inside the span', async () => {
    const [line] = await logged(`
      const log = createLogger('worker');
      await inSpan(async () => { await new Promise((r) => setTimeout(r, 5)); log.info('later'); });
    `);
    expect(line).toMatchObject({ msg: 'later', trace_id: TRACE_ID, span_id: SPAN_ID });
  });

  it('adds the span\'s ids to lines of child loggers too', async () => {
    const [line] = await logged(`const log = createLogger('worker').child({ model: 'iris' }); inSpan(() => log.warn('slow'));`);
    expect(line).toMatchObject({ model: 'iris', level: 'warn', trace_id: TRACE_ID, span_id: SPAN_ID });
  });

  it('adds no trace_id or span_id outside a span', async () => {
    const [line] = await logged(`createLogger('worker').info('outside');`);
    expect(line).not.toHaveProperty('trace_id');
    expect(line).not.toHaveProperty('span_id');
  });

  it('redacts password, token, secret, apiKey and authorization fields at the top level', async () => {
    const [line] = await logged(`createLogger('cli').info({ user: 'ada', password: 'p', token: 't', secret: 's', apiKey: 'k', authorization: 'Bearer x' }, 'login');`);
    expect(line).toMatchObject({ user: 'ada', password: '[redacted]', token: '[redacted]', secret: '[redacted]', apiKey: '[redacted]', authorization: '[redacted]' });
  });

  it('redacts those fields one level down, such as a request\'s authorization header', async () => {
    const [line] = await logged(`
      createLogger('router').info({
        headers: { authorization: 'Bearer x', 'content-type': 'application/grpc' },
        db: { host: 'db', password: 'hunter2' },
        nats: { token: 't' },
      }, 'request');
    `);
    expect(line.headers).toEqual({ authorization: '[redacted]', 'content-type': 'application/grpc' });
    expect(line.db).toEqual({ host: 'db', password: '[redacted]' });
    expect(line.nats).toEqual({ token: '[redacted]' });
  });

  it('does not leak a redacted value anywhere in the line', async () => {
    const lines = await logged(`createLogger('router').info({ password: 'hunter2', nested: { password: 'hunter2' } }, 'x');`);
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });

  it('logs an Error under err with its type, message and stack', async () => {
    const [line] = await logged(`createLogger('worker').error({ err: new TypeError('bad input') }, 'handler failed');`);
    expect(line).toMatchObject({ level: 'error', msg: 'handler failed', err: { type: 'TypeError', message: 'bad input' } });
    expect((line.err as { stack: string }).stack).toContain('TypeError: bad input');
  });

  it('writes info and above by default, not debug', async () => {
    const lines = await logged(`const log = createLogger('w'); log.debug('d'); log.info('i'); log.error('e');`);
    expect(lines.map((l) => l.msg)).toEqual(['i', 'e']);
  });

  it('takes the level from LOG_LEVEL', async () => {
    const lines = await logged(`const log = createLogger('w'); log.trace('t'); log.debug('d'); log.info('i');`, { LOG_LEVEL: 'debug' });
    expect(lines.map((l) => [l.level, l.msg])).toEqual([['debug', 'd'], ['info', 'i']]);
  });

  it('lets the pino options given override the defaults, such as the level', async () => {
    const lines = await logged(`const log = createLogger('w', { level: 'silent' }); log.error('e');`, { LOG_LEVEL: 'debug' });
    expect(lines).toEqual([]);
  });
});
