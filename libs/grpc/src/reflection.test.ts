/**
 * Server reflection against a real reflection client: the buf CLI resolves the services of a
 * server made by createGrpcServer through grpc.reflection and calls them, the way a user does
 * with `buf curl` or grpcurl. Both build the descriptors they get with Go's protodesc and drop
 * a file it rejects, so a wrong descriptor shows up as a missing service. Then the served
 * descriptors themselves, against buf's compiler.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { PROTO_FILES, PROTO_ROOT, inferenceService, monitorService, preprocessorService, workerService } from '@infermesh/contracts';
import type { ModelInferRequest__Output, ModelInferResponse, ModelMetadataRequest__Output, ModelMetadataResponse } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { buf } from '@infermesh/testing';
import { createGrpcServer, type GrpcServer } from './index.js';
import { fileDescriptorProtos } from './reflection.js';

const logger = createLogger('grpc-reflection-test', { level: 'silent' });

const CURL = ['curl', '--protocol', 'grpc', '--http2-prior-knowledge'];

describe('server reflection, through buf curl', () => {
  let server: GrpcServer;
  let url: string;
  let inferRequest: ModelInferRequest__Output | undefined;

  beforeAll(async () => {
    server = createGrpcServer({ name: 'reflection-test', logger, maxMessageBytes: 1024 * 1024 });
    server.addService('inference.GRPCInferenceService', inferenceService(), {
      ModelMetadata: async (request: ModelMetadataRequest__Output): Promise<ModelMetadataResponse> => ({ name: request.name, platform: 'onnxruntime_onnx', versions: ['1'] }),
      ModelInfer: async (request: ModelInferRequest__Output): Promise<ModelInferResponse> => {
        inferRequest = request;
        return { modelName: request.modelName, parameters: { echoed: request.parameters.mode } };
      },
    });
    server.setServing(true);
    url = `http://127.0.0.1:${await server.listen('127.0.0.1', 0)}`;
  });

  afterAll(() => server?.server.forceShutdown());

  function call(method: string, body?: object): Promise<unknown> {
    const data = body === undefined ? [] : ['-d', JSON.stringify(body)];
    return buf([...CURL, ...data, `${url}/${method}`], 'utf8').then((stdout) => JSON.parse(stdout));
  }

  it('lists every method of the services this server serves and of grpc.health.v1.Health, and no other', async () => {
    const listed = (await buf([...CURL, '--reflect', '--list-methods', url], 'utf8')).trim().split('\n');
    const methods = (definition: grpc.ServiceDefinition) => Object.values(definition).map((method: grpc.MethodDefinition<unknown, unknown>) => method.path.slice(1));
    expect(listed.sort()).toEqual([...methods(inferenceService()), 'grpc.health.v1.Health/Check', 'grpc.health.v1.Health/List', 'grpc.health.v1.Health/Watch'].sort());
    for (const other of [preprocessorService(), workerService(), monitorService()]) for (const method of methods(other)) expect(listed).not.toContain(method);
  });

  it('calls a unary method and prints the handler\'s answer', async () => {
    expect(await call('inference.GRPCInferenceService/ModelMetadata', { name: 'x' })).toEqual({ name: 'x', platform: 'onnxruntime_onnx', versions: ['1'] });
  });

  it('carries a map field to the handler and back, with the .proto field names', async () => {
    const answer = await call('inference.GRPCInferenceService/ModelInfer', { model_name: 'iris', parameters: { mode: { string_param: 'fast' } } });
    expect(inferRequest?.modelName).toBe('iris');
    expect(inferRequest?.parameters).toEqual({ mode: expect.objectContaining({ stringParam: 'fast' }) });
    expect(answer).toEqual({ modelName: 'iris', parameters: { echoed: { stringParam: 'fast' } } });
  });

  it('answers grpc.health.v1.Health/Check', async () => {
    expect(await call('grpc.health.v1.Health/Check', { service: 'inference.GRPCInferenceService' })).toEqual({ status: 'SERVING' });
  });
});

describe('fileDescriptorProtos', () => {
  type Json = null | boolean | number | string | Json[] | JsonObject;
  type JsonObject = { [key: string]: Json };

  /** Nested types in name order (protoc keeps source order, which protobufjs does not record), imports sorted, empty options dropped. */
  function comparable(file: Json): Json {
    if (Array.isArray(file)) return file.map(comparable);
    if (file === null || typeof file !== 'object') return file;
    const entries = Object.entries(file)
      .filter(([key, value]) => !(key === 'options' && value !== null && typeof value === 'object' && Object.keys(value).length === 0))
      .map(([key, value]): [string, Json] => {
        if (key === 'nestedType' && Array.isArray(value)) return [key, comparable([...value].sort((a, b) => name(a).localeCompare(name(b))))];
        if (key === 'dependency' && Array.isArray(value)) return [key, [...value].sort()];
        return [key, comparable(value)];
      });
    return Object.fromEntries(entries);
  }

  function name(value: Json): string {
    return value !== null && typeof value === 'object' && !Array.isArray(value) && typeof value.name === 'string' ? value.name : '';
  }

  /** A FileDescriptorProto as JSON, without its options: go_package and the like are for code generators, and reflection serves none. */
  function withoutFileOptions(file: JsonObject): Json {
    const { options: _options, ...rest } = file;
    return comparable(rest);
  }

  it('describes each .proto file of the mesh as buf\'s compiler does', async () => {
    const image = await buf(['build', PROTO_ROOT, '--exclude-source-info', '-o', '-'], 'buffer');
    const compiled = descriptor.FileDescriptorSet.toObject(descriptor.FileDescriptorSet.decode(image), { enums: String }).file as JsonObject[];
    const expected = new Map(compiled.map((file) => [file.name, withoutFileOptions(file)]));
    const served = fileDescriptorProtos({ root: PROTO_ROOT, files: PROTO_FILES }).map((bytes) =>
      withoutFileOptions(descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(bytes), { enums: String }) as JsonObject),
    );
    expect(served.map(name).sort()).toEqual([...PROTO_FILES].sort());
    for (const file of served) expect(file, name(file)).toEqual(expected.get(name(file)));
  });
});
