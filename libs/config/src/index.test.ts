import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, commonSettings, loadConfig, setting, z } from './index.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('no ConfigError was thrown');
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('loadConfig', () => {
  const schema = {
    ROUTER_HOST: setting.host('0.0.0.0'),
    ROUTER_PORT: setting.port(8001),
    ROUTER_WORKERS: setting.positiveInt(4),
  };

  it('uses the defaults for variables that are not set', () => {
    expect(loadConfig(schema, {})).toEqual({ ROUTER_HOST: '0.0.0.0', ROUTER_PORT: 8001, ROUTER_WORKERS: 4 });
  });

  it('treats a variable set to the empty string as not set', () => {
    expect(loadConfig(schema, { ROUTER_HOST: '', ROUTER_PORT: '' })).toEqual({ ROUTER_HOST: '0.0.0.0', ROUTER_PORT: 8001, ROUTER_WORKERS: 4 });
  });

  it('coerces numeric strings to numbers', () => {
    expect(loadConfig(schema, { ROUTER_HOST: '127.0.0.1', ROUTER_PORT: '9000', ROUTER_WORKERS: '16' })).toEqual({
      ROUTER_HOST: '127.0.0.1',
      ROUTER_PORT: 9000,
      ROUTER_WORKERS: 16,
    });
  });

  it('returns only the variables of the schema', () => {
    expect(loadConfig({ ROUTER_PORT: setting.port(1) }, { ROUTER_PORT: '2', PATH: '/usr/bin', OTHER: 'x' })).toEqual({ ROUTER_PORT: 2 });
  });

  it('reads process.env when no environment is given', () => {
    vi.stubEnv('ROUTER_PORT', '7001');
    expect(loadConfig({ ROUTER_PORT: setting.port(1) })).toEqual({ ROUTER_PORT: 7001 });
  });

  it('throws a ConfigError that names the variable, says why and shows the value', () => {
    const error = configError(() => loadConfig(schema, { ROUTER_PORT: 'eighty' }));
    expect(error.name).toBe('ConfigError');
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]).toMatch(/^ROUTER_PORT: .+ \(got "eighty"\)$/);
    expect(error.message).toBe(`invalid configuration:\n  ${error.issues[0]}`);
  });

  it('lists every invalid variable at once, one per line', () => {
    const error = configError(() => loadConfig(schema, { ROUTER_PORT: '70000', ROUTER_WORKERS: '0', ROUTER_HOST: 'ok' }));
    expect(error.issues.map((issue) => issue.split(':')[0]).sort()).toEqual(['ROUTER_PORT', 'ROUTER_WORKERS']);
    expect(error.message.split('\n')).toHaveLength(3);
    expect(error.message).toContain('(got "70000")');
    expect(error.message).toContain('(got "0")');
  });

  it('names a required variable that is missing', () => {
    const error = configError(() => loadConfig({ MODEL_REPOSITORY: z.string().min(1) }, {}));
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]).toMatch(/^MODEL_REPOSITORY: .+ \(got undefined\)$/);
  });
});

describe('settings', () => {
  it('port accepts 0 to 65535 and refuses the rest', () => {
    const schema = { PORT: setting.port(1) };
    expect(loadConfig(schema, { PORT: '0' }).PORT).toBe(0);
    expect(loadConfig(schema, { PORT: '65535' }).PORT).toBe(65535);
    expect(configError(() => loadConfig(schema, { PORT: '65536' })).issues[0]).toMatch(/^PORT: /);
    expect(configError(() => loadConfig(schema, { PORT: '-1' })).issues[0]).toMatch(/^PORT: /);
    expect(configError(() => loadConfig(schema, { PORT: '80.5' })).issues[0]).toMatch(/^PORT: /);
  });

  it('positiveInt refuses zero and fractions', () => {
    const schema = { N: setting.positiveInt(1) };
    expect(configError(() => loadConfig(schema, { N: '0' })).issues[0]).toMatch(/^N: /);
    expect(configError(() => loadConfig(schema, { N: '1.5' })).issues[0]).toMatch(/^N: /);
  });

  it('list splits on commas, trims and drops empty items', () => {
    const schema = { MODELS: setting.list(['iris']) };
    expect(loadConfig(schema, { MODELS: ' iris, text-direction ,,resnet ' }).MODELS).toEqual(['iris', 'text-direction', 'resnet']);
  });

  it('list uses its default when not set', () => {
    expect(loadConfig({ MODELS: setting.list(['iris']) }, {}).MODELS).toEqual(['iris']);
  });

  it('maxMessageBytes refuses less than 1 KiB', () => {
    const schema = { MAX: setting.maxMessageBytes() };
    expect(loadConfig(schema, { MAX: '1024' }).MAX).toBe(1024);
    expect(configError(() => loadConfig(schema, { MAX: '1023' })).issues[0]).toMatch(/^MAX: .+\(got "1023"\)$/);
  });

  it('subjectPrefix accepts dotted NATS tokens and refuses wildcards and spaces, saying what it expects', () => {
    const schema = { PREFIX: setting.subjectPrefix() };
    expect(loadConfig(schema, { PREFIX: 'staging.eu-1' }).PREFIX).toBe('staging.eu-1');
    for (const bad of ['a.*', 'a.>', 'two words', 'trailing.', '.leading']) {
      expect(configError(() => loadConfig(schema, { PREFIX: bad })).issues[0]).toContain('a NATS subject token like "infermesh"');
    }
  });
});

describe('commonSettings', () => {
  it('defaults to the local NATS, the infermesh prefix and 64 MiB messages', () => {
    expect(loadConfig(commonSettings, {})).toEqual({
      NATS_URL: 'nats://127.0.0.1:4222',
      NATS_SUBJECT_PREFIX: 'infermesh',
      GRPC_MAX_MESSAGE_BYTES: 64 * 1024 * 1024,
      GRPC_MAX_CONCURRENT_STREAMS: 256,
      GRPC_IDLE_TIMEOUT_MS: 300_000,
      GRPC_HANDSHAKE_TIMEOUT_MS: 10_000,
    });
  });

  it('reads each shared variable', () => {
    expect(loadConfig(commonSettings, {
      NATS_URL: 'nats://nats:4222', NATS_SUBJECT_PREFIX: 'test', GRPC_MAX_MESSAGE_BYTES: '2048',
      GRPC_MAX_CONCURRENT_STREAMS: '8', GRPC_IDLE_TIMEOUT_MS: '1000', GRPC_HANDSHAKE_TIMEOUT_MS: '500',
    })).toEqual({
      NATS_URL: 'nats://nats:4222',
      NATS_SUBJECT_PREFIX: 'test',
      GRPC_MAX_MESSAGE_BYTES: 2048,
      GRPC_MAX_CONCURRENT_STREAMS: 8,
      GRPC_IDLE_TIMEOUT_MS: 1000,
      GRPC_HANDSHAKE_TIMEOUT_MS: 500,
    });
  });
});
