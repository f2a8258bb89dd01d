import { loadConfig, commonSettings, setting } from '@infermesh/config';

export function preprocessorConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig({ ...commonSettings, PREPROCESSOR_HOST: setting.host('0.0.0.0'), PREPROCESSOR_PORT: setting.port(8003) }, env);
}

export type PreprocessorConfig = ReturnType<typeof preprocessorConfig>;
