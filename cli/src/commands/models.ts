/** infermesh models: what the mesh serves, with each model's tensors. */
import { connect } from '@infermesh/client';
import { routerClientOptions } from './predict.js';

export async function listModels(address: string, json: boolean): Promise<void> {
  const client = connect(address, routerClientOptions());
  try {
    const index = await client.repositoryIndex();
    const names = [...new Set(index.filter((m) => m.state === 'READY').map((m) => m.name))];
    const metadata = await Promise.all(names.map((name) => client.modelMetadata(name)));
    if (json) {
      // Shapes as strings, as proto3's JSON writes int64 (and as this printed before it used @infermesh/client).
      const tensors = (list: typeof metadata[number]['inputs']) => list.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) }));
      console.log(JSON.stringify(metadata.map((m) => ({ name: m.name, versions: m.versions, platform: m.platform, inputs: tensors(m.inputs), outputs: tensors(m.outputs) })), null, 2));
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
