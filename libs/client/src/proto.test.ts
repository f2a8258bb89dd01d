/** The package ships its own copy of the public proto; it must be the repository's, byte for byte. */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { PROTO_DIR } from './grpc/proto.js';

const REPOSITORY_PROTO = new URL('../../../proto/inference/', import.meta.url);

describe('the shipped proto', () => {
  it.each(['grpc_service.proto', 'model_config.proto'])('libs/client/proto/inference/%s is the same as proto/inference/%s', async (file) => {
    const shipped = await readFile(`${PROTO_DIR}inference/${file}`, 'utf8');
    const repository = await readFile(new URL(file, REPOSITORY_PROTO), 'utf8');
    expect(shipped, `copy proto/inference/${file} to libs/client/proto/inference/${file}`).toBe(repository);
  });
});
