/**
 * Model metadata and statistics from their snake_case wire shape, which gRPC (proto field
 * names) and REST (JSON) share: numbers may come as decimal strings (64-bit) or numbers.
 */
import type { ModelMetadataWire, ModelStatisticsWire, StatisticDurationWire } from './grpc/proto.js';
import type { ModelMetadata, ModelStatistics, StatisticDuration } from './types.js';

export function modelMetadataOf(wire: ModelMetadataWire): ModelMetadata {
  const tensor = (t: ModelMetadataWire['inputs'][number]) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(Number) });
  return { name: wire.name, versions: [...wire.versions], platform: wire.platform, inputs: wire.inputs.map(tensor), outputs: wire.outputs.map(tensor) };
}

function duration(wire: StatisticDurationWire | null | undefined): StatisticDuration {
  return { count: Number(wire?.count ?? 0), ns: Number(wire?.ns ?? 0) };
}

/** Statistics in camelCase with numbers. */
export function modelStatisticsOf(wire: ModelStatisticsWire): ModelStatistics {
  const s = wire.inference_stats ?? {};
  return {
    name: wire.name,
    version: wire.version,
    lastInference: Number(wire.last_inference ?? 0),
    inferenceCount: Number(wire.inference_count ?? 0),
    executionCount: Number(wire.execution_count ?? 0),
    inferenceStats: {
      success: duration(s.success), fail: duration(s.fail), queue: duration(s.queue),
      computeInput: duration(s.compute_input), computeInfer: duration(s.compute_infer), computeOutput: duration(s.compute_output),
      cacheHit: duration(s.cache_hit), cacheMiss: duration(s.cache_miss),
    },
    batchStats: (wire.batch_stats ?? []).map((b) => ({
      batchSize: Number(b.batch_size ?? 0),
      computeInput: duration(b.compute_input as StatisticDurationWire | null),
      computeInfer: duration(b.compute_infer as StatisticDurationWire | null),
      computeOutput: duration(b.compute_output as StatisticDurationWire | null),
    })),
  };
}
