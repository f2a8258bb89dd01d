/** infermesh models: what the mesh serves, with each model's tensors. */
import type { ModelMetadataResponse__Output, RepositoryIndexResponse__Output } from '@infermesh/contracts';
import { call, routerClient } from '../client.js';

export async function listModels(address: string, json: boolean): Promise<void> {
  const client = routerClient(address);
  try {
    const index = await call<{ ready: boolean }, RepositoryIndexResponse__Output>(client, client.RepositoryIndex, { ready: true });
    const names = [...new Set(index.models.map((m) => m.name))];
    const metadata = await Promise.all(names.map((name) => call<{ name: string }, ModelMetadataResponse__Output>(client, client.ModelMetadata, { name })));
    if (json) {
      console.log(JSON.stringify(metadata, null, 2));
      return;
    }
    if (metadata.length === 0) {
      console.log('no models are served yet (is a worker running?)');
      return;
    }
    for (const model of metadata) {
      console.log(`${model.name}  versions ${model.versions.join(', ')}  (${model.platform})`);
      for (const t of model.inputs) console.log(`  in   ${t.name}  ${t.datatype} [${t.shape.join(', ')}]`);
      for (const t of model.outputs) console.log(`  out  ${t.name}  ${t.datatype} [${t.shape.join(', ')}]`);
    }
  } finally {
    client.close();
  }
}
