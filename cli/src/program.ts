/**
 * The infermesh command line as one commander program: every command, its arguments and its
 * own options are declared here once, with descriptions and defaults, so `--help`, the refusal
 * of flags a command does not take and the shell completion scripts all come from the same
 * declarations. Each command's work stays in commands/<command>.ts, loaded only when it runs
 * (the onnxruntime of `optimize` is not loaded to list models).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Argument, Command, CommanderError, Option } from 'commander';
import { InferenceError } from '@infermesh/client';
import { describeError } from './client.js';
import { parseWorkerIds } from './commands/certs.js';
import { checkKeyId } from './commands/keys.js';
import { parseShadows, parseWeights } from './commands/traffic.js';
import { checkVersion, parseCanaryPercent } from './rollout/plan.js';
import { completionScript, SHELLS, type Shell } from './program-completion.js';
import {
  anyAddress, collect, fromCheck, grpcAddress, nameList, positiveInteger, positiveIntegerList, positiveNumber, seconds, wholeNumber,
} from './program-values.js';

/** The exit codes of every command (the help's footer lists them). */
export const EXIT = { ok: 0, failed: 1, usage: 2, someFailed: 3, gateRefused: 4, interrupted: 130 } as const;

/** Defaults shown in the help; program.test.ts checks they are the commands' own. */
export const DEFAULTS = {
  router: '127.0.0.1:8001',
  monitor: '127.0.0.1:8004',
  profileBins: 10,
  optimizeRuns: 100,
  optimizeWarmup: 10,
  graphLevel: 'basic',
  graphLevels: ['basic', 'extended', 'all'],
  optimizeWaitS: 60,
  profileMaxBins: 32,
} as const;

/** The repository's root (cli/dist/program.js → ../../). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const FOOTER = `
Exit codes:
  0    done
  1    a call failed, or the command could not do its work (the message says why)
  2    usage: an unknown command or option, an option of another command, a missing or invalid value
  3    done, but some items failed (batch, bench, evaluate, feedback, ocr)
  4    the evaluation gate refused the version (rollout)
  130  interrupted with Ctrl-C (batch, feedback)

Environment:
  INFERMESH_ADDRESS          the router, for --address (default ${DEFAULTS.router})
  INFERMESH_API_KEY          the API key sent to the router (authorization: Bearer <key>)
  INFERMESH_MONITOR_ADDRESS  the monitor, for --monitor (default ${DEFAULTS.monitor})
  NATS_URL                   NATS, for --nats (with NATS_USER and NATS_PASSWORD_FILE, or NATS_CREDS_FILE);
                             unset: the NATS of the mesh \`infermesh up\` runs here, else nats://127.0.0.1:4222
  MESH_TLS_CA_FILE, MESH_TLS_CERT_FILE, MESH_TLS_KEY_FILE
                             the operator's certificate, for the monitor under mutual TLS
  MODEL_REPOSITORY           the model repository, for --repository (default: the repository's models/)

'infermesh <command> --help' describes a command and its options;
'infermesh completion bash|zsh|fish' prints a shell completion script.`;

/** Where commander's own text goes: help on `out`, usage errors on `err`. */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

const processOutput: CliOutput = { out: (text) => process.stdout.write(text), err: (text) => process.stderr.write(text) };

/** The option of a command that speaks to the router. */
function addressOption(parse: (text: string) => string = grpcAddress, what = 'the router\'s gRPC address, HOST:PORT'): Option {
  return new Option('--address <HOST:PORT>', what).default(DEFAULTS.router).env('INFERMESH_ADDRESS').argParser(parse);
}
const clientAddressOption = () => addressOption(anyAddress, 'the router: HOST:PORT or grpc://HOST:PORT (gRPC), http://HOST:PORT (REST)');
const monitorOption = () => new Option('--monitor <HOST:PORT>', 'the monitor\'s gRPC address').default(DEFAULTS.monitor).env('INFERMESH_MONITOR_ADDRESS');
const natsOption = () => new Option('--nats <URL>', 'NATS (unset: the NATS of the mesh `infermesh up` runs here, else nats://127.0.0.1:4222)').env('NATS_URL');
const jsonOption = (what = 'the result as JSON') => new Option('--json', what);
const repositoryOption = () => new Option('--repository <DIR>', 'the model repository (default: the repository\'s models/)').env('MODEL_REPOSITORY');
const modelOption = () => new Option('--model <NAME>', 'the model (required)').makeOptionMandatory();
const versionOption = () => new Option('--version <V>', 'the version (default: the router\'s choice, by the model\'s traffic policy)');
const exitCodes = (codes: string) => `\nExit codes: ${codes}; 2 usage (infermesh --help lists them all).`;

/** What runs a command: it returns the exit code (-1: it keeps running, as `up` does). */
type Run = (...args: any[]) => Promise<number>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * The program. `setCode` receives the exit code of the command that ran; usage errors are
 * thrown as CommanderError (exitOverride), after commander wrote them to `io.err`.
 */
export function buildProgram(io: CliOutput = processOutput, setCode: (code: number) => void = () => {}): Command {
  const program = new Command('infermesh')
    .description('The infermesh command line: run the mesh, call it, change what it serves, read its statistics.')
    .version(VERSION, '-V, --version', 'the version of infermesh')
    // Its own options only before the command: `infermesh predict --version 2` is predict's --version.
    .enablePositionalOptions()
    .addHelpText('after', FOOTER)
    .helpCommand('help [command]', 'the help of a command')
    .showSuggestionAfterError(true);
  configure(program, io);

  const command = (name: string, summary: string, description = summary): Command => {
    const cmd = program.command(name).summary(summary).description(description);
    configure(cmd, io);
    return cmd;
  };
  const run = (cmd: Command, fn: Run) =>
    cmd.action(async (...args: unknown[]) => {
      setCode(await fn(...args));
    });

  run(
    command('up', 'run the whole mesh on this machine (NATS, monitor, preprocessor, workers, router)', 'Runs the whole mesh on this machine: its own nats-server, the monitor, the preprocessor, workers and the router, with mutual TLS between them. Ctrl-C stops everything.')
      .addOption(new Option('--workers <N>', 'CPU worker processes (one per GPU when there are GPUs)').default(1).argParser(positiveInteger))
      .option('--logs', 'print the services\' logs here instead of .data/logs/')
      .addHelpText('after', exitCodes('0 stopped with Ctrl-C, 1 a service failed')),
    async (o: { workers: number; logs?: boolean }) => {
      const { up } = await import('./commands/up.js');
      await up({ workers: o.workers, logs: o.logs ?? false });
      return -1; // keeps running until Ctrl-C
    },
  );

  run(
    command('predict', 'one prediction: images or rows, answered with labels and scores', 'One prediction: the images (or rows) in one request, answered with the top classes and scores per item.')
      .addOption(modelOption())
      .addOption(versionOption())
      .addOption(new Option('--image <FILE>', 'an image (repeatable: one batch)').argParser(collect()))
      .addOption(new Option('--row <JSON>', 'a tabular row as a JSON object (repeatable)').argParser(collect()).conflicts('image'))
      .option('--input-name <NAME>', 'the raw input\'s name (default: image, or row)')
      .addOption(new Option('--top <K>', 'classes to show per item').default(2).argParser(positiveInteger))
      .addOption(clientAddressOption())
      .addOption(jsonOption('the outputs as JSON'))
      .addHelpText('after', exitCodes('0 answered, 1 the call failed')),
    async (o: { model: string; version?: string; image?: string[]; row?: string[]; inputName?: string; top: number; address: string; json?: boolean }, cmd: Command) => {
      if (!o.image && !o.row) cmd.error('error: give --image <FILE> or --row <JSON> (each repeatable)');
      const { predict } = await import('./commands/predict.js');
      await predict({ address: o.address, model: o.model, version: o.version ?? '', images: o.image ?? [], rows: o.row ?? [], inputName: o.inputName, top: o.top, json: o.json ?? false });
      return EXIT.ok;
    },
  );

  run(
    command('ocr', 'the text lines of page images, read by the mesh\'s ocr pipeline', 'The text lines of page images (PNG or JPEG), read by the mesh\'s ocr pipeline (detection, crop, text direction, recognition): per page its lines top to bottom, each with its score, its box (left,top right,bottom in page pixels) and its text. One request per page; for a folder of pages: infermesh batch --model ocr --input DIR --output FILE.jsonl.')
      .argument('<page...>', 'page images (PNG or JPEG)')
      .addOption(new Option('--model <NAME>', 'the OCR model (a pipeline answering text, scores and boxes)').default('ocr'))
      .addOption(versionOption())
      .addOption(clientAddressOption())
      .addOption(jsonOption('the lines of every page as JSON (text, score, box corners clockwise from top-left)'))
      .addHelpText('after', exitCodes('0 every page read, 1 the call failed, 3 some pages failed')),
    async (pages: string[], o: { model: string; version?: string; address: string; json?: boolean }) => {
      const { ocr } = await import('./commands/ocr.js');
      const failed = await ocr({ address: o.address, model: o.model, version: o.version ?? '', pages, json: o.json ?? false });
      return failed > 0 ? EXIT.someFailed : EXIT.ok;
    },
  );

  run(
    command('batch', 'stream a data set through the mesh, one JSON line per item', 'Streams a data set (a folder of PNG/JPEG images, or a .jsonl file of rows) through the router\'s ModelStreamInfer and writes one JSON line per item. An existing output file is resumed: answered items are kept and skipped, failed ones sent again.')
      .addOption(modelOption())
      .addOption(versionOption())
      .addOption(new Option('--input <PATH>', 'a folder of PNG/JPEG images, or a .jsonl file of rows').makeOptionMandatory())
      .addOption(new Option('--output <FILE>', 'JSON lines; an existing file is resumed, not overwritten (required)').makeOptionMandatory())
      .option('--input-name <NAME>', 'the raw input\'s name (default: image, or row)')
      .addOption(new Option('--window <N>', 'items in flight at most').default(64).argParser(positiveInteger))
      .addOption(clientAddressOption())
      .addOption(jsonOption('the summary as JSON on stdout (progress stays on stderr)'))
      .addHelpText('after', exitCodes('0 every item answered, 1 the stream broke (run again to resume), 3 some items failed, 130 interrupted')),
    async (o: { model: string; version?: string; input: string; output: string; inputName?: string; window: number; address: string; json?: boolean }) => {
      const { batch } = await import('./commands/batch.js');
      await batch({ address: o.address, model: o.model, version: o.version ?? '', input: o.input, output: o.output, inputName: o.inputName, window: o.window, json: o.json ?? false });
      return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
    },
  );

  run(
    command('bench', 'load generator: a concurrency sweep or request rates against the router', 'A load generator in the spirit of Triton\'s perf_analyzer: a concurrency sweep (closed loop) or request rates (open loop), each level bounded by --duration and --requests. Prints throughput, latency percentiles and the server\'s queue/compute split.')
      .addOption(modelOption())
      .addOption(versionOption())
      .addOption(new Option('--image <FILE>', 'an image to send (repeatable: sent in turn)').argParser(collect()))
      .addOption(new Option('--row <JSON>', 'a tabular row to send (repeatable: sent in turn)').argParser(collect()).conflicts('image'))
      .addOption(new Option('--synthetic', 'random data for the model\'s tensors').conflicts(['image', 'row']))
      .addOption(new Option('--tensor <NAME:TYPE:DIMS>', 'with --synthetic: the model tensor to fill (repeatable), e.g. features:FP32:4 or x:UINT8:48,192,3 (default: ModelMetadata\'s inputs)').argParser(collect()))
      .addOption(new Option('--batch <B>', 'rows per request, with --synthetic').default(1).argParser(positiveInteger))
      .addOption(new Option('--concurrency <LIST>', 'requests in flight, per level (closed loop)').default([1, 2, 4, 8, 16], '1,2,4,8,16').argParser(positiveIntegerList()))
      .addOption(new Option('--rate <LIST>', 'requests per second, per level (open loop), e.g. 100,200').argParser(positiveIntegerList()).conflicts('concurrency'))
      .addOption(new Option('--duration <S>', 'seconds per level').default(10).argParser(seconds(3600)))
      .addOption(new Option('--requests <N>', 'requests per level at most (0: no bound)').default(0).argParser(wholeNumber(0)))
      .addOption(new Option('--warmup <S>', 'seconds of warm-up before the first level').default(1).argParser(seconds(3600)))
      .option('--output <FILE>', 'the results as .json or .csv')
      .option('--chart <FILE>', 'latency against throughput as an SVG chart')
      .addOption(addressOption())
      .addOption(jsonOption('the results as JSON instead of the table'))
      .addHelpText('after', exitCodes('0 no request failed, 1 the run could not start, 3 some requests failed')),
    async (o: { model: string; version?: string; image?: string[]; row?: string[]; synthetic?: boolean; tensor?: string[]; batch: number; concurrency: number[]; rate?: number[]; duration: number; requests: number; warmup: number; output?: string; chart?: string; address: string; json?: boolean }, cmd: Command) => {
      if (!o.image && !o.row && !o.synthetic) cmd.error('error: give --image <FILE>, --row <JSON> or --synthetic');
      const { runBench } = await import('./commands/bench.js');
      const options = {
        address: o.address, model: o.model, version: o.version ?? '', images: o.image ?? [], rows: o.row ?? [], synthetic: o.synthetic ?? false, tensors: o.tensor ?? [], batch: o.batch,
        concurrency: o.concurrency, rates: o.rate ?? [], durationMs: o.duration * 1000, maxRequests: o.requests, warmupMs: o.warmup * 1000, output: o.output, chart: o.chart,
      };
      const results = await runBench(options, o.json ? () => {} : console.log);
      if (o.json) console.log(JSON.stringify({ model: o.model, results }, null, 2));
      return results.some((r) => r.errors > 0) ? EXIT.someFailed : EXIT.ok;
    },
  );

  run(
    command('feedback', 'the true labels of earlier requests, for the monitor\'s accuracy', 'Sends the true labels of earlier requests to the router\'s FeedbackService, from a .jsonl file of lines {"id": "...", "label": "setosa"} or {"id": "...", "labels": [...]}, each with an optional "model".')
      .addOption(new Option('--file <FILE>', 'the .jsonl file of labels (required)').makeOptionMandatory())
      .option('--model <NAME>', 'the model of lines without one')
      .addOption(addressOption())
      .addOption(jsonOption('the summary as JSON'))
      .addHelpText('after', exitCodes('0 every line stored or already labelled, 1 it could not run, 3 some lines were not stored, 130 interrupted')),
    async (o: { file: string; model?: string; address: string; json?: boolean }) => {
      const { feedback } = await import('./commands/feedback.js');
      return feedback({ address: o.address, file: o.file, model: o.model, json: o.json ?? false });
    },
  );

  run(
    command('models', 'the models the mesh serves and their tensors')
      .addOption(clientAddressOption())
      .addOption(jsonOption('the models\' metadata as JSON'))
      .addHelpText('after', exitCodes('0 listed, 1 the call failed')),
    async (o: { address: string; json?: boolean }) => {
      const { listModels } = await import('./commands/models.js');
      await listModels(o.address, o.json ?? false);
      return EXIT.ok;
    },
  );

  run(
    command('stats', 'request counts and latency per model, drift, accuracy and usage, from the monitor')
      .option('--model <NAME>', 'one model (default: all)')
      .addOption(monitorOption())
      .addOption(jsonOption())
      .addHelpText('after', exitCodes('0 shown, 1 the call failed')),
    async (o: { model?: string; monitor: string; json?: boolean }) => {
      const { showStats } = await import('./commands/stats.js');
      await showStats(o.monitor, o.model ?? '', o.json ?? false);
      return EXIT.ok;
    },
  );

  run(
    command('alerts', 'the monitor\'s alerts firing now', 'The monitor\'s alerts firing now, as a table; --follow then prints each transition as it happens, until Ctrl-C.')
      .option('--all', 'and the last resolved ones')
      .option('--follow', 'then each transition as it happens, until Ctrl-C (reconnects when the monitor restarts)')
      .addOption(monitorOption())
      .addOption(jsonOption('JSON lines, one per alert or transition'))
      .addHelpText('after', exitCodes('0 shown (or followed until Ctrl-C), 1 the call failed')),
    async (o: { all?: boolean; follow?: boolean; monitor: string; json?: boolean }) => {
      const { alerts } = await import('./commands/alerts.js');
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      await alerts({ address: o.monitor, all: o.all ?? false, follow: o.follow ?? false, json: o.json ?? false, signal: stop.signal });
      return EXIT.ok;
    },
  );

  run(
    command('workers', 'the workers announcing themselves on NATS (device, provider, models, load)', 'The workers announcing themselves on NATS in 1.5 s: device, execution provider, models, queue and requests in flight.')
      .addOption(natsOption())
      .addOption(jsonOption('the heartbeats as JSON'))
      .addHelpText('after', exitCodes('0 listed, 1 NATS could not be reached')),
    async (o: { nats?: string; json?: boolean }) => {
      const { listWorkers } = await import('./commands/workers.js');
      await listWorkers(o.nats, o.json ?? false);
      return EXIT.ok;
    },
  );

  run(
    command('traffic', 'a model\'s traffic policy: weights between versions (canary), shadow versions', 'Shows a model\'s traffic policy, or changes it: the weights between versions for unversioned requests (a canary) and the shadow versions that get a copy of each request. Without --weights, --shadow or --clear: shows the policy. An option replaces its part of the policy and keeps the rest.')
      .argument('<model>', 'the model')
      .addOption(new Option('--weights <V=W,...>', 'unversioned requests shared by weight (relative: 90 and 10 are 90 % and 10 %)').argParser(fromCheck(parseWeights)))
      .addOption(new Option('--shadow <V,...|none>', 'versions that get a copy of each request (answers compared, never returned); none: no shadow').argParser(fromCheck(parseShadows)))
      .addOption(new Option('--clear', 'no weights, no shadows: the newest version serves every unversioned request').conflicts(['weights', 'shadow']))
      .option('--by <WHO>', 'who asks (default user@host)')
      .option('--reason <TEXT>', 'why (kept with the policy)', '')
      .addOption(natsOption())
      .addOption(jsonOption('the policy in force as JSON'))
      .addHelpText('after', exitCodes('0 shown or changed, 1 NATS could not be reached')),
    async (model: string, o: { weights?: { version: string; weight: number }[]; shadow?: string[]; clear?: boolean; by?: string; reason: string; nats?: string; json?: boolean }) => {
      const { traffic } = await import('./commands/traffic.js');
      return traffic({ model, weights: o.weights, shadows: o.shadow, clear: o.clear ?? false, by: o.by, reason: o.reason, nats: o.nats, json: o.json ?? false });
    },
  );

  run(
    command('rollout', 'a candidate version into production behind the evaluation gate of config.yaml', 'Moves a candidate version into production through the model\'s traffic policy, behind the evaluation gate of its config.yaml (gate: {accuracy_drop: 0.01, p99_ms: 50}: the candidate\'s evaluation.json accuracy at least the serving version\'s minus 0.01, its p99 at most 50 ms; run infermesh evaluate on both versions first). With no action: the policy, the evaluations side by side, the gate\'s decision, and the monitor\'s requests, errors and p99 per version with the alerts firing.')
      .argument('<model>', 'the model')
      .addOption(new Option('--version <V>', 'the candidate version').argParser(fromCheck((text) => checkVersion(text))))
      .addOption(new Option('--canary <P%>', 'P % of unversioned requests to the candidate, the rest to the serving version').argParser(fromCheck(parseCanaryPercent)).conflicts(['promote', 'rollback', 'shadow']))
      .addOption(new Option('--promote', '100 % to the candidate (the gate is checked again)').conflicts(['rollback', 'shadow']))
      .addOption(new Option('--rollback', '100 % back to the serving version (--version: the candidate, default the newest weighted)').conflicts('shadow'))
      .option('--shadow', 'the candidate gets a copy of every request, never answers a client (no gate)')
      .addOption(new Option('--serving <V>', 'the version serving now (default: the other version the policy weighs most, else the newest other version in the repository)').argParser(fromCheck((text) => checkVersion(text))))
      .option('--force', 'past a failed gate; said on stderr and kept in the policy\'s reason')
      .option('--by <WHO>', 'who asks (default user@host)')
      .addOption(repositoryOption())
      .addOption(natsOption())
      .addOption(monitorOption())
      .addOption(jsonOption('the policy (and with no action the evaluations and the gate) as JSON'))
      .addHelpText('after', exitCodes('0 shown or changed, 1 it could not run, 4 the gate refused the candidate')),
    async (model: string, o: RolloutFlags, cmd: Command) => {
      const needsVersion = o.canary !== undefined || o.promote || o.shadow;
      if (needsVersion && !o.version) cmd.error(`error: --${o.canary !== undefined ? 'canary' : o.promote ? 'promote' : 'shadow'} needs the candidate: --version <V>`);
      const { rollout } = await import('./commands/rollout.js');
      return rollout({ model, ...o, promote: o.promote ?? false, rollback: o.rollback ?? false, shadow: o.shadow ?? false, force: o.force ?? false, json: o.json ?? false });
    },
  );

  run(
    command('certs', 'a development CA and mesh certificates (mutual TLS between services)', `Writes a development CA (ca.crt, ca.key, kept unless --fresh) and a certificate and key for each mesh service into --dir:
  router.crt        spiffe://infermesh/router/router (also localhost, 127.0.0.1: usable as the public endpoint's certificate on this machine)
  preprocessor.crt  spiffe://infermesh/preprocessor/preprocessor
  monitor.crt       spiffe://infermesh/monitor/monitor
  operator.crt      spiffe://infermesh/operator/operator (the CLI, calling the monitor)
  worker.crt        spiffe://infermesh/worker/<id> for each --workers id
Point each service at its files: MESH_TLS_CA_FILE=DIR/ca.crt MESH_TLS_CERT_FILE=DIR/<service>.crt MESH_TLS_KEY_FILE=DIR/<service>.key.`)
      .addOption(new Option('--dir <DIR>', 'where to write').default(join(ROOT, '.data', 'certs'), '.data/certs'))
      .addOption(new Option('--workers <ID,...>', 'the worker ids (default worker-cpu0..7 and worker-gpu0..7, the ids `infermesh up` gives)').argParser(fromCheck(parseWorkerIds)))
      .option('--fresh', 'a new CA too')
      .addOption(jsonOption('the files written as JSON'))
      .addHelpText('after', exitCodes('0 written, 1 openssl failed')),
    async (o: { dir: string; workers?: string[]; fresh?: boolean; json?: boolean }) => {
      const { certs } = await import('./commands/certs.js');
      return certs({ dir: o.dir, workers: o.workers, fresh: o.fresh ?? false, json: o.json ?? false });
    },
  );

  const keys = command('keys', 'API keys for the router\'s keys file (ROUTER_API_KEYS_FILE)');
  const keysCommand = (name: string, summary: string, description: string) => {
    const cmd = keys.command(name).summary(summary).description(description);
    configure(cmd, io);
    return cmd;
  };
  run(
    keysCommand('create', 'a new API key and its keys file entry', 'Makes an API key. The key is printed on stdout, alone (it is shown only this once: the router keeps only its SHA-256), and the keys file entry on stderr, or appended to --file.')
      .addOption(new Option('--id <ID>', 'the key\'s id: 1 to 64 letters, digits and dashes, starting with a letter or digit (required)').makeOptionMandatory().argParser(fromCheck(checkKeyId)))
      .addOption(new Option('--models <a,b|*>', 'the models the key may call').default('*').argParser((text) => (text.trim() === '*' ? '*' : nameList(text))))
      .option('--admin', 'may use the repository API (load, unload, index)')
      .addOption(new Option('--rate <N>', 'requests per second at most').argParser(positiveNumber))
      .addOption(new Option('--burst <N>', 'requests at once above the rate (needs --rate)').argParser(positiveInteger))
      .addOption(new Option('--quota-requests <N>', 'requests per quota period at most').argParser(positiveInteger))
      .addOption(new Option('--quota-items <N>', 'items per quota period at most').argParser(positiveInteger))
      .addOption(new Option('--quota-period <PERIOD>', 'the quota\'s period').choices(['minute', 'hour', 'day', 'month']).default('day'))
      .option('--file <FILE>', 'the keys file to add the entry to (.yaml or .json)')
      .addOption(jsonOption('the key and its entry as JSON on stdout'))
      .addHelpText('after', exitCodes('0 made, 1 the keys file could not be written')),
    async (o: { id: string; models: '*' | string[]; admin?: boolean; rate?: number; burst?: number; quotaRequests?: number; quotaItems?: number; quotaPeriod: string; file?: string; json?: boolean }, cmd: Command) => {
      if (o.burst !== undefined && o.rate === undefined) cmd.error('error: --burst needs --rate');
      const { createKey } = await import('./commands/keys.js');
      await createKey({ ...o, admin: o.admin ?? false, json: o.json ?? false });
      return EXIT.ok;
    },
  );
  run(
    keysCommand('hash', 'the SHA-256 of a key read on stdin', 'Prints the SHA-256 of the API key read on stdin, as the keys file holds it.')
      .addHelpText('after', exitCodes('0 printed, 1 stdin holds no API key')),
    async () => {
      const { hashKey } = await import('./commands/keys.js');
      await hashKey();
      return EXIT.ok;
    },
  );

  run(
    command('profile', 'a model\'s drift reference profile, written beside the model (profile.json)', 'Builds the model\'s drift reference profile from a data set and writes it beside the model (<repository>/<model>/<version>/profile.json).')
      .argument('<model>', 'the model')
      .addOption(new Option('--data <PATH>', 'rows: a .csv file (a header row naming the features) or a .jsonl file (one JSON object per line), for a tabular model; images: a folder of PNG/JPEG files (searched recursively), for an image model (required)').makeOptionMandatory())
      .addOption(repositoryOption())
      .option('--version <V>', 'the version to profile (default: the newest version folder)')
      .option('--out <FILE>', 'where to write (default <repository>/<model>/<version>/profile.json)')
      .addOption(new Option('--bins <N>', 'bins per feature at most, from the data\'s quantiles').default(DEFAULTS.profileBins).argParser(wholeNumber(2, DEFAULTS.profileMaxBins)))
      .addOption(jsonOption('what was written, and the summaries, as JSON'))
      .addHelpText('after', exitCodes('0 written, 1 the data or the model could not be read')),
    async (model: string, o: { data: string; repository?: string; version?: string; out?: string; bins: number; json?: boolean }) => {
      const { profile } = await import('./commands/profile.js');
      return profile({ model, ...o, json: o.json ?? false });
    },
  );

  run(
    command('optimize', 'a new, smaller version of a model (graph optimization, int8 weights), compared with the original', 'Writes a new version of the model, optimized, and compares it with the original in this process (onnxruntime-node on the CPU, the model as the worker serves it): file size, top-class agreement, accuracy on the model\'s evaluation set, latency p50/p99 at batch 1 and 8. Neither --graph nor --int8: both.')
      .argument('<model>', 'the model')
      .option('--from <VERSION>', 'the version to start from (default: the newest)')
      .option('--to <VERSION>', 'the version to write (default: the newest + 1); an existing one is never overwritten')
      .addOption(repositoryOption())
      .option('--graph', 'onnxruntime graph optimization, saved to the file')
      .addOption(new Option('--level <LEVEL>', 'its level: basic (standard ONNX operators, runs on every provider), extended (adds onnxruntime\'s CPU/CUDA fused operators), all (adds a layout for this machine\'s CPU only)').choices(DEFAULTS.graphLevels).default(DEFAULTS.graphLevel))
      .option('--int8', 'weight-only int8: large MatMul/Gemm/Conv weights stored as INT8 with a scale, dequantized to FP32 before use')
      .addOption(new Option('--runs <N>', `timed runs per version and batch size (after ${DEFAULTS.optimizeWarmup} warm-up runs)`).default(DEFAULTS.optimizeRuns).argParser(wholeNumber(1, 10_000)))
      .addOption(new Option('--threads <N>', 'onnxruntime threads per version while timing (1: steadier figures on a shared machine; 0: onnxruntime\'s default, every core)').default(1).argParser(wholeNumber(0, 256)))
      .option('--evaluate', 'then evaluate both versions through the running mesh (infermesh evaluate\'s figures side by side), once its workers serve the new version')
      .addOption(addressOption(grpcAddress, 'the router, for --evaluate'))
      .addOption(new Option('--wait <S>', 'seconds to wait for the workers to serve the new version').default(DEFAULTS.optimizeWaitS).argParser(seconds(3600)))
      .addOption(jsonOption())
      .addHelpText('after', exitCodes('0 written (and evaluated), 1 it could not be optimized or evaluated')),
    async (model: string, o: { from?: string; to?: string; repository?: string; graph?: boolean; level: string; int8?: boolean; runs: number; threads: number; evaluate?: boolean; address: string; wait: number; json?: boolean }) => {
      const { optimize } = await import('./commands/optimize.js');
      return optimize({ model, ...o, graph: o.graph ?? false, int8: o.int8 ?? false, evaluate: o.evaluate ?? false, json: o.json ?? false });
    },
  );

  run(
    command('evaluate', 'a model version\'s accuracy, confusion matrix, latency p50/p99 and size on a labelled set', 'Runs a version of the model on a labelled set through the mesh (the router\'s ModelInfer) and reports accuracy, the confusion matrix, latency p50/p99, the model file\'s size and the resident memory of the workers serving the version (the whole worker process, every model it holds, from their heartbeats on NATS: NATS_URL with NATS_USER etc., else the mesh `infermesh up` runs here); writes them to <repository>/<model>/<version>/evaluation.json.')
      .argument('<model>', 'the model')
      .option('--version <V>', 'the version (default: the newest version the mesh serves)')
      .option('--data <PATH>', 'the labelled set: a .jsonl file of rows, each with "label", or a folder of images with labels.jsonl ({"file": ..., "label": ...} per line) (default <repository>/<model>/evaluation/)')
      .addOption(repositoryOption())
      .addOption(new Option('--concurrency <N>', 'requests in flight').default(4).argParser(positiveInteger))
      .addOption(new Option('--requests <N>', 'requests of the timed latency load, cycling through the set').default(200).argParser(positiveInteger))
      .addOption(addressOption())
      .addOption(jsonOption('the report as JSON'))
      .addHelpText('after', exitCodes('0 evaluated, 1 it could not run, 3 some items failed')),
    async (model: string, o: { version?: string; data?: string; repository?: string; concurrency: number; requests: number; address: string; json?: boolean }) => {
      const { evaluate } = await import('./commands/evaluate.js');
      return evaluate({ model, ...o, json: o.json ?? false });
    },
  );

  run(
    command('completion', 'a shell completion script (bash, zsh or fish), made from these commands and options', `Prints a completion script for the shell, made from the program's own commands and options:
  bash   source <(infermesh completion bash)          (or save it under /etc/bash_completion.d/)
  zsh    source <(infermesh completion zsh)           (or save it as _infermesh in a folder of $fpath)
  fish   infermesh completion fish > ~/.config/fish/completions/infermesh.fish`)
      .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS)),
    async (shell: Shell) => {
      io.out(completionScript(program, shell));
      return EXIT.ok;
    },
  );

  return program;
}

/** Usage errors as "infermesh: ..." with where to read more; exit code 2 (EXIT.usage) is set by runCli. */
function configure(cmd: Command, io: CliOutput): void {
  cmd
    .exitOverride()
    .allowExcessArguments(false)
    .configureOutput({
      writeOut: (text) => io.out(text),
      writeErr: (text) => io.err(text),
      outputError: (text, write) => write(usageMessage(cmd, text)),
    });
}

/** Commander's "error: unknown option '--top'" as one line naming the command, and where the flag belongs when another command takes it. */
function usageMessage(cmd: Command, text: string): string {
  const path = commandPath(cmd);
  let message = text.trimEnd().replace(/^error: /, '');
  const unknown = /^unknown option '(--?[^'=]+)/.exec(message);
  if (unknown) {
    const owners = root(cmd).commands.flatMap((c) => [c, ...c.commands]).filter((c) => c !== cmd && c.options.some((o) => o.long === unknown[1] || o.short === unknown[1]));
    if (owners.length > 0 && !cmd.parent) message += ` (${unknown[1]} is an option of ${owners.map((c) => c.name()).join(', ')}: put it after the command)`;
    else if (owners.length > 0) message += ` (${unknown[1]} is an option of ${owners.map((c) => `'${commandPath(c)}'`).join(', ')}, not of '${path}')`;
  }
  return `${path}: ${message}\n(${path} --help lists its ${cmd.commands.length > 0 ? 'commands and ' : ''}options)\n`;
}

function root(cmd: Command): Command {
  let top = cmd;
  while (top.parent) top = top.parent;
  return top;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Runs the command line `argv` (without node and the script); returns the exit code
 * (-1: the command keeps running). Errors of a command are printed here as one line.
 */
export async function runCli(argv: readonly string[], io: CliOutput = processOutput): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (error) {
    // Help and the version exit 0; every other commander error is a usage error, already written.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    io.err(`infermesh: ${describeFailure(error)}\n`);
    return EXIT.failed;
  }
}

/** One line for a failed command; @infermesh/client's errors read as the CLI's gRPC errors always have. */
export function describeFailure(error: unknown): string {
  if (!(error instanceof InferenceError)) return describeError(error);
  const cause = error.cause as { code?: unknown; details?: unknown } | undefined;
  // gRPC: the grpc-js error it wraps, described as before.
  if (typeof cause?.code === 'number' && typeof cause.details === 'string') return describeError(cause);
  if (error.code === 'UNAVAILABLE' && /ECONNREFUSED/.test(error.message)) return `${error.message}: is the mesh running? (npm start, or --address)`;
  if (error.code === 'UNAUTHENTICATED') return `UNAUTHENTICATED: ${error.message} (the CLI sends the key in INFERMESH_API_KEY)`;
  return `${error.code}: ${error.message}`;
}

interface RolloutFlags {
  version?: string; canary?: number; promote?: boolean; rollback?: boolean; shadow?: boolean; serving?: string; force?: boolean; by?: string;
  repository?: string; nats?: string; monitor: string; json?: boolean;
}
