/** The preprocessor as a pure factory. Stateless: each request carries its pipeline. */
import { createGrpcServer, http2LimitsOf, meshServerCredentials, meshTlsFromConfig, type GrpcServer, type Role } from '@infermesh/grpc';
import { preprocessorService } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import { preprocessorHandlers } from './preprocessor-service.js';
import { preprocessLimitsOf, type PreprocessorConfig } from './config.js';

export interface Preprocessor {
  readonly grpc: GrpcServer;
  start(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The mesh roles that may call each method (enforced under mesh TLS): workers send their
 * models' images to Preprocess; routers send pages to OcrCrop, the glue of the pipelines they
 * execute. Each role only its own method.
 */
export const PREPROCESSOR_CALLERS: Readonly<Record<'Preprocess' | 'OcrCrop', readonly Role[]>> = { Preprocess: ['worker'], OcrCrop: ['router'] };

export function createPreprocessor({ config, logger }: { config: PreprocessorConfig; logger: Logger }): Preprocessor {
  const grpc = createGrpcServer({ name: 'infermesh-preprocessor', logger, maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES, http2: http2LimitsOf(config), healthPort: config.GRPC_HEALTH_PORT, credentials: meshServerCredentials(meshTlsFromConfig(config)) });
  // A call carries the images of many requests (many traces): each item gets its own span instead.
  // OcrCrop (one page of one pipeline request) opens its span in the request's trace itself.
  grpc.addService('infermesh.v1.Preprocessor', preprocessorService(), preprocessorHandlers(config.GRPC_MAX_MESSAGE_BYTES, preprocessLimitsOf(config)), { untraced: ['Preprocess', 'OcrCrop'], callers: [], methodCallers: PREPROCESSOR_CALLERS });
  return {
    grpc,
    async start() {
      const port = await grpc.listen(config.PREPROCESSOR_HOST, config.PREPROCESSOR_PORT);
      grpc.setServing(true);
      logger.info({ port }, 'preprocessor serving');
      return port;
    },
    stop: () => grpc.shutdown(10_000),
  };
}
