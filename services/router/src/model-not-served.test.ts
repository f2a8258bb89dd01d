/** What a request for a model no worker announced is answered: final only once some worker has announced models. */
import { describe, expect, it } from 'vitest';
import { Status } from '@infermesh/grpc';
import { RoutingTable } from './routing-table.js';
import { modelNotServed } from './inference-service.js';
import { modelStatus } from './router.fixture.js';

describe('a model no worker announced', () => {
  it('is UNAVAILABLE (retry) while no worker has announced any model, NOT_FOUND naming the served ones after', () => {
    const table = new RoutingTable(60_000);
    table.markFilled();
    expect(modelNotServed(table, 'iris')).toMatchObject({ code: Status.UNAVAILABLE, message: "model 'iris' is not served yet: no worker has announced a model to this router; retry" });
    table.update({ workerId: 'w', address: 'w:1', device: 'cpu', models: [modelStatus('iris')], queueDepth: 0, inFlight: 0, sentAtMs: String(Date.now()), draining: false, executionProvider: 'cpu', rssBytes: '0' });
    expect(modelNotServed(table, 'resnet')).toMatchObject({ code: Status.NOT_FOUND, message: "model 'resnet' is not served by this mesh (models: iris)" });
  });
});
