/** The infermesh command line: run the mesh, call it, read its statistics. */
import { parseArgs } from 'node:util';
import { DEFAULT_MONITOR, DEFAULT_ROUTER, describeError } from './client.js';

const USAGE = `usage: infermesh <command> [options]

commands:
  up        run the whole mesh on this machine (NATS, monitor, preprocessor, workers, router)
              --workers N      worker processes (default 1)
              --logs           print the services' logs here instead of .data/logs/
  predict   one prediction
              --model NAME [--version V]
              --image FILE     an image (repeatable: one batch)
              --row JSON       a tabular row as a JSON object (repeatable)
              --input-name N   the raw input's name (default: image / row)
              --top K          classes to show per item (default 2)
  batch     stream a data set through the mesh (ModelStreamInfer), one JSON line per item
              --model NAME [--version V]
              --input PATH     a folder of PNG/JPEG images, or a .jsonl file of rows
              --output FILE    JSON lines; an existing file is resumed, not overwritten
              --window N       items in flight at most (default 64)
  bench     load generator: a concurrency sweep or request rates against the router
              --model NAME  --image FILE | --row JSON | --synthetic [--batch B]
              --tensor N:T:D   with --synthetic: the model tensor to fill (repeatable),
                               e.g. features:FP32:4 or x:UINT8:48,192,3 (default: ModelMetadata's inputs)
              --concurrency 1,4,16 | --rate 100,200   (default concurrency 1,2,4,8,16)
              --duration S     seconds per level (default 10)   --requests N  per level
              --warmup S       (default 1)   --output FILE.json|.csv   --chart FILE.svg
  feedback  the true labels of earlier requests, for the monitor's accuracy (FeedbackService)
              --file FILE      .jsonl lines {"id": "...", "label": "setosa"} or {"id": "...",
                               "labels": [...]}, each with an optional "model"
              --model NAME     the model of lines without one
  models    the models the mesh serves and their tensors
  stats     request counts and latency per model, from the monitor  [--model NAME]
  alerts    the monitor's alerts firing now  [--all: and the last resolved]
              --follow         then each transition as it happens, until Ctrl-C
  workers   the workers announcing themselves on NATS (device, provider, models, load)
              --nats URL       (default NATS_URL, else the NATS of the mesh "up" runs here
                               with its operator user, else nats://127.0.0.1:4222)
  traffic   a model's traffic policy: weights between versions (canary), shadow versions
              <model> [--weights 1=90,2=10] [--shadow 2 | none] [--clear] [--by WHO]
              [--reason TEXT] [--nats URL]                (infermesh traffic --help)
  rollout   a candidate version into production behind the evaluation gate of config.yaml
              <model> --version V --canary 10% | --promote | --shadow; --rollback; no option: status
              [--force] [--by WHO] [--serving V]          (infermesh rollout --help)
  certs     a development CA and mesh certificates (mutual TLS between services)
              [--dir DIR] [--workers ID,ID] [--fresh]      (infermesh certs --help)
  keys      API keys for the router's keys file (ROUTER_API_KEYS_FILE)
              create --id ID [--models a,b] [--admin] [--rate N] [--burst N]
                     [--quota-requests N] [--quota-items N] [--quota-period day] [--file PATH]
              hash             the SHA-256 of a key read on stdin
  profile   a model's drift reference profile, written beside the model (profile.json)
              <model> --data FILE.csv|FILE.jsonl|FOLDER  [--repository DIR] [--version V]
              [--out FILE] [--bins N]                     (infermesh profile --help)
  optimize  a new, smaller version of a model (graph optimization, int8 weights), compared
              with the original: size, accuracy, agreement, p50/p99
              <model> [--from V] [--to V] [--repository DIR] [--graph] [--int8]
              [--evaluate: then both through the mesh, side by side]  (infermesh optimize --help)
  evaluate  a model version's accuracy, confusion matrix, latency p50/p99 and size on a
            labelled set, through the mesh; written beside the version (evaluation.json)
              <model> [--version V] [--data PATH] [--concurrency N] [--requests N]
              [--repository DIR] [--json]             (infermesh evaluate --help)

common options:
  --address HOST:PORT   the router (default ${DEFAULT_ROUTER}, or INFERMESH_ADDRESS)
  --monitor HOST:PORT   the monitor (default ${DEFAULT_MONITOR})
  --json                machine-readable output
  INFERMESH_API_KEY     the API key sent to the router (authorization: Bearer <key>)`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'certs') {
    const { certs } = await import('./commands/certs.js');
    const { ROOT } = await import('./commands/up.js');
    return certs(rest, ROOT);
  }
  if (command === 'keys') {
    const { keys } = await import('./commands/keys.js');
    return keys(rest);
  }
  if (command === 'evaluate') {
    const { evaluate } = await import('./commands/evaluate.js');
    return evaluate(rest);
  }
  if (command === 'traffic') {
    const { traffic } = await import('./commands/traffic.js');
    return traffic(rest);
  }
  if (command === 'rollout') {
    const { rollout } = await import('./commands/rollout.js');
    return rollout(rest);
  }
  if (command === 'profile') {
    const { profile } = await import('./commands/profile.js');
    return profile(rest);
  }
  if (command === 'optimize') {
    const { optimize } = await import('./commands/optimize.js');
    return optimize(rest);
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      address: { type: 'string', default: DEFAULT_ROUTER },
      monitor: { type: 'string', default: DEFAULT_MONITOR },
      model: { type: 'string' },
      version: { type: 'string', default: '' },
      image: { type: 'string', multiple: true, default: [] },
      input: { type: 'string' },
      file: { type: 'string' },
      row: { type: 'string', multiple: true, default: [] },
      'input-name': { type: 'string' },
      top: { type: 'string', default: '2' },
      workers: { type: 'string', default: '1' },
      output: { type: 'string' },
      synthetic: { type: 'boolean', default: false },
      tensor: { type: 'string', multiple: true, default: [] },
      batch: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '1,2,4,8,16' },
      rate: { type: 'string' },
      duration: { type: 'string', default: '10' },
      requests: { type: 'string', default: '0' },
      warmup: { type: 'string', default: '1' },
      chart: { type: 'string' },
      window: { type: 'string', default: '64' },
      nats: { type: 'string' },
      logs: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      follow: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  });
  if (!command || values.help || command === 'help') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const positiveInt = (name: string, value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${value}'`);
    return n;
  };
  switch (command) {
    case 'up': {
      const { up } = await import('./commands/up.js');
      await up({ workers: positiveInt('workers', values.workers), logs: values.logs });
      return -1; // keeps running until Ctrl-C
    }
    case 'predict': {
      if (!values.model) throw new Error('--model is required');
      const { predict } = await import('./commands/predict.js');
      await predict({ address: values.address, model: values.model, version: values.version, images: values.image, rows: values.row, inputName: values['input-name'], top: positiveInt('top', values.top), json: values.json });
      return 0;
    }
    case 'batch': {
      if (!values.model) throw new Error('--model is required');
      if (!values.input) throw new Error('--input is required (a folder of images or a .jsonl file)');
      if (!values.output) throw new Error('--output is required (a .jsonl file)');
      const { batch } = await import('./commands/batch.js');
      await batch({ address: values.address, model: values.model, version: values.version, input: values.input, output: values.output, inputName: values['input-name'], window: positiveInt('window', values.window) });
      return process.exitCode === undefined ? 0 : Number(process.exitCode);
    }
    case 'bench': {
      if (!values.model) throw new Error('--model is required');
      const list = (name: string, value: string) => value.split(',').map((v) => positiveInt(name, v.trim()));
      const seconds = (name: string, value: string) => {
        const n = Number(value);
        if (!Number.isFinite(n) || n < 0 || n > 3600) throw new Error(`--${name} must be seconds between 0 and 3600, got '${value}'`);
        return n * 1000;
      };
      const { runBench } = await import('./commands/bench.js');
      const results = await runBench({
        address: values.address, model: values.model, version: values.version, images: values.image, rows: values.row,
        synthetic: values.synthetic, tensors: values.tensor, batch: positiveInt('batch', values.batch),
        concurrency: list('concurrency', values.concurrency), rates: values.rate ? list('rate', values.rate) : [],
        durationMs: seconds('duration', values.duration), maxRequests: Number(values.requests) || 0, warmupMs: seconds('warmup', values.warmup),
        output: values.output, chart: values.chart,
      });
      return results.some((r) => r.errors > 0) ? 3 : 0;
    }
    case 'feedback': {
      if (!values.file) throw new Error('--file is required (a .jsonl file of {"id": ..., "label": ...} lines)');
      const { feedback } = await import('./commands/feedback.js');
      return feedback({ address: values.address, file: values.file, model: values.model, json: values.json });
    }
    case 'models': {
      const { listModels } = await import('./commands/models.js');
      await listModels(values.address, values.json);
      return 0;
    }
    case 'stats': {
      const { showStats } = await import('./commands/stats.js');
      await showStats(values.monitor, values.model ?? '', values.json);
      return 0;
    }
    case 'alerts': {
      const { alerts } = await import('./commands/alerts.js');
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      await alerts({ address: values.monitor, all: values.all, follow: values.follow, json: values.json, signal: stop.signal });
      return 0;
    }
    case 'workers': {
      const { listWorkers } = await import('./commands/workers.js');
      await listWorkers(values.nats, values.json);
      return 0;
    }
    default:
      console.error(`unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`infermesh: ${describeError(error)}`);
    process.exitCode = 1;
  },
);
