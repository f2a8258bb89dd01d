/**
 * config.yaml's `postprocess`: what the worker makes of a model's raw outputs before it answers.
 * The defaults are PaddleOCR's (DBPostProcess and CTCLabelDecode), so a config may name the
 * step alone: `postprocess: {db: {}}`.
 */
import { z } from 'zod';

/** PaddleOCR's DBPostProcess: the probability map of a DB text detector becomes boxes. */
export const dbSchema = z.object({
  /** The raw output holding the probability map, [N, 1, H, W]; the model's first output when unset. */
  output: z.string().min(1).optional(),
  thresh: z.number().gt(0).lt(1).default(0.3),
  box_thresh: z.number().min(0).max(1).default(0.6),
  unclip_ratio: z.number().positive().max(10).default(1.5),
  /** Connected regions looked at per image, in raster order (PaddleOCR: contours). */
  max_candidates: z.number().int().positive().max(10_000).default(1000),
  /** A box whose shorter side is under this (in map pixels) is dropped. */
  min_size: z.number().min(0).default(3),
}).strict();

/** PaddleOCR's CTCLabelDecode (greedy): per time step the best class, repeats merged, blanks (class 0) dropped. */
export const ctcSchema = z.object({
  /** The raw output holding the class probabilities, [N, T, C]; the model's first output when unset. */
  output: z.string().min(1).optional(),
  /** File of the version directory (`<name>/<version>/`): one character a line, class i + 1 is line i. */
  dictionary: z.string().min(1).regex(/^[^/\\]+$/, 'a file name in the version directory, without a path'),
  /** Append ' ' as the last class (PaddleOCR's use_space_char). */
  space_char: z.boolean().default(true),
}).strict();

export const postprocessSchema = z.union([
  z.object({ db: dbSchema }).strict(),
  z.object({ ctc: ctcSchema }).strict(),
]);

export type DbOptions = z.infer<typeof dbSchema>;
export type CtcOptions = z.infer<typeof ctcSchema>;
export type PostprocessConfig = z.infer<typeof postprocessSchema>;
