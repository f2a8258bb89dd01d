import { loadConfig, commonSettings, setting, z } from '@infermesh/config';
import { IMAGE_FORMATS, type PreprocessLimits } from './image-limits.js';

export function preprocessorConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig({ ...commonSettings, PREPROCESSOR_HOST: setting.host('127.0.0.1'), PREPROCESSOR_PORT: setting.port(8003), ...limitSettings }, env);
}

export type PreprocessorConfig = ReturnType<typeof preprocessorConfig>;

/** What one request may bring (image-limits.ts; the defaults and why are there and in the README). */
const limitSettings = {
  /** Formats decoded, told by their magic bytes: png, jpeg (the default), webp, gif, tiff, heif, svg. */
  PREPROCESSOR_IMAGE_FORMATS: z.string().default('png,jpeg')
    .transform((value) => value.split(',').map((item) => item.trim().toLowerCase()).filter(Boolean))
    .pipe(z.array(z.enum(IMAGE_FORMATS)).min(1)),
  PREPROCESSOR_MAX_IMAGES: setting.positiveInt(1024),
  PREPROCESSOR_MAX_IMAGE_PIXELS: setting.positiveInt(25_000_000),
  PREPROCESSOR_MAX_REQUEST_PIXELS: setting.positiveInt(100_000_000),
};

export function preprocessLimitsOf(config: PreprocessorConfig): PreprocessLimits {
  return {
    formats: config.PREPROCESSOR_IMAGE_FORMATS,
    maxImages: config.PREPROCESSOR_MAX_IMAGES,
    maxImagePixels: config.PREPROCESSOR_MAX_IMAGE_PIXELS,
    maxRequestPixels: config.PREPROCESSOR_MAX_REQUEST_PIXELS,
  };
}
