/**
 * What a user would write instead of a serving mesh: one node:http process, a JSON body,
 * the model's preprocessing, one onnxruntime run per request. POST /predict/<model> with
 * {"image": "<base64>"} or {"row": {...}}; answers {"outputs": {name: [values]}}.
 */
import { createServer } from 'node:http';
import { loadLocalModel, type LocalModel } from './pipeline.js';

const repository = process.env.MODEL_REPOSITORY ?? 'models';
const port = Number(process.env.PORT ?? 8080);
const models = new Map<string, LocalModel>();
for (const name of (process.env.MODELS ?? 'text-direction,iris').split(',')) models.set(name, await loadLocalModel(repository, name));

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', async () => {
    try {
      const model = models.get(req.url?.replace('/predict/', '') ?? '');
      if (req.method !== 'POST' || !model) {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { image?: string; row?: object };
      const element = body.image !== undefined ? Buffer.from(body.image, 'base64') : Buffer.from(JSON.stringify(body.row));
      const outputs = await model.infer([element]);
      const json = Object.fromEntries(Object.entries(outputs).map(([name, tensor]) => [name, Array.from(tensor.data as ArrayLike<number | bigint>, Number)]));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ outputs: json }));
    } catch (error) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (error as Error).message }));
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ msg: 'rest server listening', port })));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
