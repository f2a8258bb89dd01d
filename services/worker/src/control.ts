/**
 * Repository control of this worker: routers ask it, on `<prefix>.control.<worker id>`, to
 * load or unload a model's versions (RepositoryModelLoad / RepositoryModelUnload); it answers
 * once the versions are READY (or freed), or with why not.
 */
import { controlCodecs, MAX_CONTROL_MESSAGE, type ControlResponse } from '@infermesh/contracts';
import type { Bus } from '@infermesh/bus';
import type { Logger } from '@infermesh/log';
import type { ModelRegistry } from './model-registry.js';

/** Versions one request may name at most; a model name at most this long. */
const MAX_VERSIONS = 256;
const MAX_NAME = 256;

type Subscription = ReturnType<Bus['nc']['subscribe']>;
/** The part of a NATS message a control request uses. */
interface ControlMessage {
  data: Uint8Array;
  respond(data: Uint8Array): boolean;
}

export function serveControl(options: { bus: Bus; registry: ModelRegistry; workerId: string; logger: Logger }): Subscription {
  const { bus, registry, workerId, logger } = options;
  const subscription = bus.nc.subscribe(bus.subjects.control(workerId));
  void (async () => {
    for await (const msg of subscription) void answer(msg);
  })();

  async function answer(msg: ControlMessage): Promise<void> {
    let response: ControlResponse;
    try {
      response = { ...(await handle(msg.data)), workerId };
    } catch (error) {
      response = { status: 'FAILED', message: (error as Error).message, workerId };
    }
    response.message = (response.message ?? '').slice(0, MAX_CONTROL_MESSAGE);
    try {
      msg.respond(controlCodecs.response().encode(response));
    } catch (error) {
      logger.warn({ err: error }, 'control reply not sent');
    }
  }

  async function handle(data: Uint8Array): Promise<ControlResponse> {
    const request = controlCodecs.request().decode(data);
    if (!request.model || request.model.length > MAX_NAME || /[/\\]|^\.\.?$/.test(request.model)) {
      return { status: 'FAILED', message: `model name ${JSON.stringify(request.model.slice(0, MAX_NAME))} is not a model of a repository` };
    }
    if (request.versions.length > MAX_VERSIONS || request.versions.some((v) => !/^\d{1,19}$/.test(v))) {
      return { status: 'FAILED', message: `versions must be at most ${MAX_VERSIONS} version numbers` };
    }
    logger.info({ action: request.action, model: request.model, versions: request.versions, requested_by: request.requestedBy }, 'repository control');
    switch (request.action) {
      case 'LOAD':
        return registry.load(request.model, request.versions, request.requestedBy);
      case 'UNLOAD':
        return registry.unload(request.model, request.versions, request.requestedBy);
      default:
        return { status: 'FAILED', message: `unknown control action ${request.action}` };
    }
  }

  return subscription;
}
