/**
 * The GRPCInferenceService definition, loaded from the package's own copy of the public proto
 * (libs/client/proto, shipped in the npm package), and the message shapes proto-loader gives
 * with the options used here: field names as in the proto, 64-bit integers as decimal strings
 * (so INT64 contents and nanosecond counters keep every digit), defaults filled in.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/** proto/ beside dist/ (and beside src/ when running from source). */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

export type Long = string | number;

export interface InferParameterWire {
  bool_param?: boolean;
  int64_param?: Long;
  string_param?: string;
  parameter_choice?: string;
}

export interface TensorContentsWire {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: Long[];
  uint_contents?: number[];
  uint64_contents?: Long[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

export interface InferTensorWire {
  name: string;
  datatype: string;
  shape: Long[];
  parameters?: Record<string, InferParameterWire>;
  contents?: TensorContentsWire | null;
}

export interface ModelInferRequestWire {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameterWire>;
  inputs: InferTensorWire[];
  outputs: { name: string; parameters: Record<string, InferParameterWire> }[];
  raw_input_contents: Buffer[];
}

export interface ModelInferResponseWire {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameterWire>;
  outputs: InferTensorWire[];
  raw_output_contents: Buffer[];
}

export interface ModelStreamInferResponseWire {
  error_message: string;
  infer_response: ModelInferResponseWire | null;
}

export interface StatisticDurationWire { count: Long; ns: Long }

export interface ModelStatisticsWire {
  name: string;
  version: string;
  last_inference: Long;
  inference_count: Long;
  execution_count: Long;
  inference_stats: Record<string, StatisticDurationWire | null> | null;
  batch_stats: ({ batch_size: Long } & Record<string, StatisticDurationWire | null | Long>)[];
}

export interface ModelMetadataWire {
  name: string;
  versions: string[];
  platform: string;
  inputs: { name: string; datatype: string; shape: Long[] }[];
  outputs: { name: string; datatype: string; shape: Long[] }[];
}

let service: grpc.ServiceClientConstructor | undefined;

/** The service's client constructor, loaded once (parsing the proto takes milliseconds). */
export function inferenceServiceClient(): grpc.ServiceClientConstructor {
  if (!service) {
    const definition = protoLoader.loadSync('inference/grpc_service.proto', {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } };
    service = loaded.inference.GRPCInferenceService;
  }
  return service;
}
