/**
 * The command line's declarations: help for each command, usage errors (exit code 2, a message
 * naming the flag), the defaults it shows against the commands' own, and the completion scripts
 * made from it (the bash one run in a real bash). Commands that reach a mesh are tested under
 * test/; the ones here run without one.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { DEFAULT_PROFILE_BINS, MAX_PROFILE_BINS } from '@infermesh/worker';
import { DEFAULT_WAIT_S } from './commands/optimize.js';
import { DEFAULT_RUNS, DEFAULT_WARMUP } from './optimize/compare.js';
import { DEFAULT_GRAPH_LEVEL, GRAPH_LEVELS } from './optimize/graph.js';
import { buildProgram, DEFAULTS, EXIT, runCli } from './program.js';

/** Runs the program in this process; commander's own output (help, usage errors) captured. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (text) => (out += text), err: (text) => (err += text) });
  return { code, out, err };
}

/** The built command line, as a user runs it. */
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
function binary(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MAIN, ...args], { timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin ?? '');
  });
}

/** Every command path, e.g. ['predict'], ['keys', 'create'] (commander's own help command aside). */
function commandPaths(cmd: Command = buildProgram(), prefix: string[] = []): string[][] {
  return cmd.commands.filter((c) => c.name() !== 'help').flatMap((c) => [[...prefix, c.name()], ...commandPaths(c, [...prefix, c.name()])]);
}

describe('help', () => {
  it('lists every command, the exit codes and the environment', async () => {
    const help = await cli('--help');
    expect(help.code).toBe(0);
    for (const name of ['up', 'predict', 'ocr', 'batch', 'bench', 'feedback', 'models', 'stats', 'alerts', 'workers', 'traffic', 'rollout', 'certs', 'keys', 'profile', 'optimize', 'evaluate', 'completion']) {
      expect(help.out).toMatch(new RegExp(`^  ${name} `, 'm'));
    }
    expect(help.out).toContain('  2    usage: an unknown command or option');
    expect(help.out).toContain('  4    the evaluation gate refused the version (rollout)');
    expect(help.out).toContain('INFERMESH_API_KEY');
  });

  it('describes each command with every option it takes', async () => {
    const program = buildProgram();
    for (const path of commandPaths(program)) {
      const declared = path.reduce<Command>((cmd, name) => cmd.commands.find((c) => c.name() === name)!, program);
      const help = await cli(...path, '--help');
      expect(help.code, path.join(' ')).toBe(0);
      expect(help.out, path.join(' ')).toContain(`Usage: infermesh ${path.join(' ')}`);
      for (const option of declared.options) expect(help.out, `${path.join(' ')} ${option.flags}`).toContain(option.flags);
    }
  });

  it('shows predict\'s flags with their defaults, the address\'s variable and its exit codes', async () => {
    const { out } = await cli('predict', '--help');
    expect(out).toMatch(/--model <NAME> +the model \(required\)/);
    expect(out).toMatch(/--top <K> +classes to show per item \(default: 2\)/);
    expect(out).toMatch(/default: "127\.0\.0\.1:8001",\s+env: INFERMESH_ADDRESS/);
    expect(out).toContain('Exit codes: 0 answered, 1 the call failed; 2 usage');
  });

  it('shows a command\'s help with `infermesh help <command>`, and keys\' subcommands', async () => {
    expect((await cli('help', 'bench')).out).toContain('--concurrency <LIST>');
    const keys = await cli('keys', '--help');
    expect(keys.out).toMatch(/create \[options\] +a new API key/);
    expect(keys.out).toMatch(/hash +the SHA-256 of a key read on stdin/);
  });

  it('shows the defaults the commands use themselves', () => {
    expect(DEFAULTS.profileBins).toBe(DEFAULT_PROFILE_BINS);
    expect(DEFAULTS.profileMaxBins).toBe(MAX_PROFILE_BINS);
    expect(DEFAULTS.optimizeRuns).toBe(DEFAULT_RUNS);
    expect(DEFAULTS.optimizeWarmup).toBe(DEFAULT_WARMUP);
    expect(DEFAULTS.graphLevel).toBe(DEFAULT_GRAPH_LEVEL);
    expect([...DEFAULTS.graphLevels]).toEqual([...GRAPH_LEVELS]);
    expect(DEFAULTS.optimizeWaitS).toBe(DEFAULT_WAIT_S);
  });
});

describe('usage errors exit 2 with a message naming what was wrong', () => {
  it('an unknown flag', async () => {
    const run = await cli('models', '--bogus');
    expect(run.code).toBe(EXIT.usage);
    expect(run.err).toMatch(/^infermesh models: unknown option '--bogus'\n\(infermesh models --help lists its options\)/);
  });

  it('a flag of another command, naming the commands that take it', async () => {
    const run = await cli('models', '--top', '3');
    expect(run.code).toBe(EXIT.usage);
    expect(run.err).toContain("unknown option '--top' (--top is an option of 'infermesh predict', not of 'infermesh models')");
    const before = await cli('--address', 'h:1', 'models');
    expect(before.code).toBe(EXIT.usage);
    expect(before.err).toContain('--address is an option of predict, ocr, batch, bench, feedback, models, optimize, evaluate: put it after the command');
  });

  it('an unknown command, and no command', async () => {
    const unknown = await cli('predcit');
    expect(unknown.code).toBe(EXIT.usage);
    expect(unknown.err).toMatch(/unknown command 'predcit'[\s\S]*Did you mean predict\?/);
    const none = await cli();
    expect(none.code).toBe(EXIT.usage);
    expect(none.err).toContain('Usage: infermesh [options] [command]');
  });

  it('a missing required option or argument', async () => {
    const batch = await cli('batch', '--model', 'iris', '--input', 'rows.jsonl');
    expect(batch.code).toBe(EXIT.usage);
    expect(batch.err).toContain("required option '--output <FILE>' not specified");
    const profile = await cli('profile', 'iris');
    expect(profile.err).toContain("required option '--data <PATH>' not specified");
    const traffic = await cli('traffic');
    expect(traffic.code).toBe(EXIT.usage);
    expect(traffic.err).toContain("missing required argument 'model'");
    const extra = await cli('evaluate', 'iris', 'tulips');
    expect(extra.err).toContain('too many arguments');
  });

  it('an input the command cannot run without', async () => {
    const predict = await cli('predict', '--model', 'iris');
    expect(predict.code).toBe(EXIT.usage);
    expect(predict.err).toContain('give --image <FILE> or --row <JSON>');
    expect((await cli('predict', '--model', 'iris', '--image', 'a.png', '--row', '{}')).err).toContain("option '--row <JSON>' cannot be used with option '--image <FILE>'");
    expect((await cli('bench', '--model', 'iris')).err).toContain('give --image <FILE>, --row <JSON> or --synthetic');
    expect((await cli('rollout', 'iris', '--canary', '10%')).err).toContain('--canary needs the candidate: --version <V>');
    expect((await cli('rollout', 'iris', '--promote', '--rollback')).err).toContain("option '--promote' cannot be used with option '--rollback'");
    expect((await cli('keys', 'create', '--id', 'ci', '--burst', '5')).err).toContain('--burst needs --rate');
  });

  it('values that are not what the flag takes', async () => {
    const cases: [string[], string][] = [
      [['predict', '--model', 'iris', '--row', '{}', '--top', '0'], "option '--top <K>' argument '0' is invalid. Expected a positive whole number."],
      [['batch', '--model', 'iris', '--input', 'x', '--output', 'y', '--window', 'many'], "option '--window <N>' argument 'many' is invalid. Expected a positive whole number."],
      [['bench', '--model', 'iris', '--synthetic', '--concurrency', '1,x'], "option '--concurrency <LIST>' argument '1,x' is invalid. Expected positive whole numbers separated by commas ('x' is not one)."],
      [['bench', '--model', 'iris', '--synthetic', '--duration', '4000'], "option '--duration <S>' argument '4000' is invalid. Expected seconds from 0 to 3600."],
      [['profile', 'iris', '--data', 'x', '--bins', '64'], "option '--bins <N>' argument '64' is invalid. Expected a whole number from 2 to 32."],
      [['optimize', 'iris', '--level', 'max'], "option '--level <LEVEL>' argument 'max' is invalid. Allowed choices are basic, extended, all."],
      [['traffic', 'iris', '--weights', '1=x'], "option '--weights <V=W,...>' argument '1=x' is invalid. Version 1 has weight 'x' (an integer from 0 to 1000000)"],
      [['rollout', 'iris', '--version', '2', '--canary', '100%'], "option '--canary <P%>' argument '100%' is invalid. Must be a whole percentage from 1 % to 99 %"],
      [['keys', 'create', '--id', '-x'], "option '--id <ID>' argument '-x' is invalid. '-x' is not a key id"],
      [['certs', '--workers', 'ok,not/an id'], "option '--workers <ID,...>' argument 'ok,not/an id' is invalid. 'not/an id' is not a worker id"],
      [['feedback', '--file', 'x', '--address', 'http://h:8000'], 'This command speaks gRPC to the router: give HOST:PORT'],
      [['completion', 'tcsh'], "argument 'shell'. Allowed choices are bash, zsh, fish."],
    ];
    for (const [argv, message] of cases) {
      const run = await cli(...argv);
      expect(run.code, argv.join(' ')).toBe(EXIT.usage);
      expect(run.err, argv.join(' ')).toContain(message);
    }
  });

  it('exits 2 from the built command line, and 0 for help', async () => {
    const refused = await binary(['models', '--top', '3']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^infermesh models: unknown option '--top'/);
    const help = await binary(['stats', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--monitor <HOST:PORT>');
  });
});

describe('commands that print data print JSON with --json', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'infermesh-program-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keys create: the key and its entry, the entry hashing the key', async () => {
    const file = join(dir, 'keys.yaml');
    const run = await binary(['keys', 'create', '--id', 'ci-json', '--models', 'iris', '--rate', '5', '--file', file, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const made = JSON.parse(run.stdout) as { key: string; file: string; entry: { id: string; sha256: string; models: string[]; rate: { per_second: number } } };
    expect(made.key).toMatch(/^imk_ci-json_[A-Za-z0-9_-]{43}$/);
    expect(made.entry).toMatchObject({ id: 'ci-json', models: ['iris'], admin: false, rate: { per_second: 5 } });
    expect(made.entry.sha256).toBe(createHash('sha256').update(made.key).digest('hex'));
    expect(made.file).toBe(file);
    const hashed = await binary(['keys', 'hash'], made.key);
    expect(hashed.stdout.trim()).toBe(made.entry.sha256);
  });

  it('certs: the CA and each certificate written', async () => {
    const out = join(dir, 'certs');
    const run = await binary(['certs', '--dir', out, '--workers', 'w-a,w-b', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const written = JSON.parse(run.stdout) as { dir: string; caFile: string; workers: string[]; certificates: Record<string, { certFile: string; keyFile: string }> };
    expect(written.workers).toEqual(['w-a', 'w-b']);
    expect(Object.keys(written.certificates)).toEqual(['router', 'preprocessor', 'monitor', 'operator', 'worker']);
    for (const file of [written.caFile, written.certificates.worker.certFile, written.certificates.worker.keyFile]) expect((await stat(file)).isFile()).toBe(true);
  });
});

describe('shell completion, made from the program', () => {
  let scripts: Record<'bash' | 'zsh' | 'fish', string>;
  let dir: string;
  beforeAll(async () => {
    scripts = { bash: (await cli('completion', 'bash')).out, zsh: (await cli('completion', 'zsh')).out, fish: (await cli('completion', 'fish')).out };
    dir = await mkdtemp(join(tmpdir(), 'infermesh-completion-'));
    await writeFile(join(dir, 'infermesh.bash'), scripts.bash);
    await writeFile(join(dir, 'sample.png'), '');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** What bash completes for the words typed so far (the last one being completed). */
  function complete(...words: string[]): Promise<string[]> {
    const script = `source ${JSON.stringify(join(dir, 'infermesh.bash'))}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_infermesh
printf '%s\\n' "\${COMPREPLY[@]}"`;
    return new Promise((resolve, reject) =>
      execFile('bash', ['-c', script], { cwd: dir }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}: ${stderr}`)) : resolve(stdout.split('\n').filter(Boolean)))),
    );
  }

  it('bash: completes every command, then a command\'s own flags only', async () => {
    const commands = commandPaths().filter((p) => p.length === 1).map((p) => p[0]);
    expect(await complete('infermesh', '')).toEqual(expect.arrayContaining(commands));
    expect(await complete('infermesh', 'pr')).toEqual(['predict', 'profile']);
    const predict = await complete('infermesh', 'predict', '--');
    expect(predict).toEqual(expect.arrayContaining(['--model', '--version', '--image', '--row', '--top', '--address', '--json', '--help']));
    expect(predict).not.toContain('--window');
    expect(await complete('infermesh', 'batch', '--w')).toEqual(['--window']);
  });

  it('bash: subcommands, choices of a value, file names, and values that look like commands', async () => {
    expect(await complete('infermesh', 'keys', '')).toEqual(['create', 'hash']);
    expect(await complete('infermesh', 'keys', 'create', '--quota-p')).toEqual(['--quota-period']);
    expect(await complete('infermesh', 'keys', 'create', '--quota-period', '')).toEqual(['minute', 'hour', 'day', 'month']);
    expect(await complete('infermesh', 'optimize', 'iris', '--level', 'e')).toEqual(['extended']);
    expect(await complete('infermesh', 'predict', '--image', 'sam')).toEqual(['sample.png']);
    expect(await complete('infermesh', 'completion', '')).toEqual(['bash', 'zsh', 'fish']);
    // A value named like a command ("bench", the model) leaves the command as it is.
    expect(await complete('infermesh', 'predict', '--model', 'bench', '--t')).toEqual(['--top']);
  });

  it('zsh and fish: every command and every flag of each', () => {
    const program = buildProgram();
    expect(scripts.zsh.startsWith('#compdef infermesh\n')).toBe(true);
    for (const path of commandPaths(program)) {
      const declared = path.reduce<Command>((cmd, name) => cmd.commands.find((c) => c.name() === name)!, program);
      const fn = `_infermesh_${path.join('_')}()`;
      const body = scripts.zsh.slice(scripts.zsh.indexOf(fn), scripts.zsh.indexOf('\n}\n', scripts.zsh.indexOf(fn)));
      expect(body, fn).not.toBe('');
      expect(scripts.fish).toContain(`-a ${path.at(-1)} -d`);
      for (const option of declared.options) {
        expect(body, `${fn} ${option.long}`).toContain(`${option.long}[`);
        expect(scripts.fish, `fish ${option.long}`).toMatch(new RegExp(`__fish_seen_subcommand_from ${path.at(-1)}[^\\n]* -l ${option.long!.slice(2)}( |$)`, 'm'));
      }
    }
  });
});
