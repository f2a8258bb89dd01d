/**
 * Server reflection over file descriptors built from the .proto sources as protoc writes
 * them: one per file, under its own name, with its imports, the .proto field names and
 * fully qualified type names.
 *
 * Not the descriptors of proto-loader's package definition: protobufjs's descriptor
 * extension, which makes them, names a map field's entry message `Parameters` where
 * descriptor.proto requires `ParametersEntry`, and writes a reserved range's exclusive end
 * as if it were inclusive (`reserved 2;` becomes the empty range [2, 2)); proto-loader then
 * merges each package's files into one (`infermesh_v1.proto`) that imports nothing, though
 * it refers to `inference.*`, with the loader's camelCased field names. Clients that build
 * what they receive with Go's protodesc (buf curl, grpcurl) reject such a file and then
 * report every service in it as missing.
 */
import { isAbsolute, join, relative, sep } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import protobuf from 'protobufjs';
import descriptor, { type IDescriptorProto, type IEnumDescriptorProto, type IFieldDescriptorProto, type IFileDescriptorProto, type IServiceDescriptorProto } from 'protobufjs/ext/descriptor/index.js';

/** .proto files named relative to the include directory `root`, as their imports name them. */
export interface ProtoFiles {
  root: string;
  files: readonly string[];
}

// The d.ts of protobufjs's descriptor extension lacks these fields; its descriptor.json has them.
type FieldProto = IFieldDescriptorProto & { proto3Optional?: boolean };
type EnumProto = IEnumDescriptorProto & { reservedRange?: { start: number; end: number }[]; reservedName?: string[] };

// google.protobuf.FieldDescriptorProto.Type and .Label.
const SCALAR_TYPES: Record<string, number> = {
  double: 1, float: 2, int64: 3, uint64: 4, int32: 5, fixed64: 6, fixed32: 7, bool: 8, string: 9,
  bytes: 12, uint32: 13, sfixed32: 15, sfixed64: 16, sint32: 17, sint64: 18,
};
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;
const LABEL_OPTIONAL = 1;
const LABEL_REPEATED = 3;

/** protoc's ToJsonName, and with `upperFirst` its MapEntryName without the suffix. */
function camelCase(name: string, upperFirst: boolean): string {
  let result = '';
  let upperNext = upperFirst;
  for (const char of name) {
    if (char === '_') upperNext = true;
    else {
      result += upperNext ? char.toUpperCase() : char;
      upperNext = false;
    }
  }
  return result;
}

/** Descriptor names are absolute with a leading dot, as protobufjs's fullName already is. */
function fieldType(field: protobuf.Field): { type: number; typeName?: string } {
  if (field.resolvedType instanceof protobuf.Type) return { type: TYPE_MESSAGE, typeName: field.resolvedType.fullName };
  if (field.resolvedType instanceof protobuf.Enum) return { type: TYPE_ENUM, typeName: field.resolvedType.fullName };
  const type = SCALAR_TYPES[field.type];
  if (type === undefined) throw new Error(`reflection: ${field.fullName} has type ${field.type}, which is not resolved`);
  return { type };
}

class FileBuilder {
  readonly dependencies = new Set<string>();

  constructor(
    private readonly name: string,
    private readonly fileOf: (object: protobuf.ReflectionObject) => string,
  ) {}

  private uses(type: protobuf.ReflectionObject | null): void {
    if (type) {
      const file = this.fileOf(type);
      if (file !== this.name) this.dependencies.add(file);
    }
  }

  message(type: protobuf.Type): IDescriptorProto {
    const mapEntries: IDescriptorProto[] = [];
    // protoc lists proto3 `optional`'s synthetic oneofs after the real ones.
    const oneofs = [...type.oneofsArray].sort((a, b) => Number(isSynthetic(a)) - Number(isSynthetic(b)));
    const fields = type.fieldsArray.map((field): FieldProto => {
      const proto: FieldProto = { name: field.name, number: field.id, jsonName: camelCase(field.name, false) };
      if (field instanceof protobuf.MapField) {
        const entry = `${camelCase(field.name, true)}Entry`;
        this.uses(field.resolvedType);
        mapEntries.push({
          name: entry,
          field: [
            { name: 'key', number: 1, label: LABEL_OPTIONAL, type: SCALAR_TYPES[field.keyType], jsonName: 'key' },
            { name: 'value', number: 2, label: LABEL_OPTIONAL, ...fieldType(field), jsonName: 'value' },
          ],
          options: { mapEntry: true },
        });
        return { ...proto, label: LABEL_REPEATED, type: TYPE_MESSAGE, typeName: `${type.fullName}.${entry}` };
      }
      this.uses(field.resolvedType);
      Object.assign(proto, fieldType(field), { label: field.repeated ? LABEL_REPEATED : LABEL_OPTIONAL });
      if (field.partOf) proto.oneofIndex = oneofs.indexOf(field.partOf);
      if (field.options?.proto3_optional) proto.proto3Optional = true;
      if (field.options?.packed === false) proto.options = { packed: false };
      return proto;
    });
    const nested = type.nestedArray.map((object) => {
      if (object instanceof protobuf.Type || object instanceof protobuf.Enum) return object;
      throw new Error(`reflection: ${object.fullName} (extensions, nested services) is not supported`);
    });
    const reserved = type.reserved ?? [];
    return {
      name: type.name,
      field: fields,
      nestedType: [...mapEntries, ...nested.filter((n) => n instanceof protobuf.Type).map((n) => this.message(n))],
      enumType: nested.filter((n) => n instanceof protobuf.Enum).map((n) => enumType(n)),
      oneofDecl: oneofs.map((oneof) => ({ name: oneof.name })),
      // protobufjs keeps ranges inclusive; DescriptorProto.ReservedRange's end is exclusive.
      reservedRange: reserved.filter((r) => typeof r !== 'string').map(([start, end]) => ({ start, end: end + 1 })),
      reservedName: reserved.filter((r) => typeof r === 'string'),
    };
  }

  service(service: protobuf.Service): IServiceDescriptorProto {
    return {
      name: service.name,
      method: service.methodsArray.map((method) => {
        this.uses(method.resolvedRequestType);
        this.uses(method.resolvedResponseType);
        return {
          name: method.name,
          inputType: method.resolvedRequestType!.fullName,
          outputType: method.resolvedResponseType!.fullName,
          ...(method.requestStream ? { clientStreaming: true } : {}),
          ...(method.responseStream ? { serverStreaming: true } : {}),
        };
      }),
    };
  }
}

function isSynthetic(oneof: protobuf.OneOf): boolean {
  return oneof.fieldsArray.length === 1 && oneof.fieldsArray[0].options?.proto3_optional === true;
}

function enumType(type: protobuf.Enum): EnumProto {
  const reserved = type.reserved ?? [];
  return {
    name: type.name,
    value: Object.entries(type.values).map(([name, number]) => ({ name, number })),
    ...(type.options?.allow_alias ? { options: { allowAlias: true } } : {}),
    // EnumReservedRange's end is inclusive, like protobufjs's.
    reservedRange: reserved.filter((r) => typeof r !== 'string').map(([start, end]) => ({ start, end })),
    reservedName: reserved.filter((r) => typeof r === 'string'),
  };
}

/** Every top-level message, enum and service, with the package it is declared in. */
function* declarations(namespace: protobuf.Namespace): Generator<{ object: protobuf.ReflectionObject; pkg: string }> {
  for (const object of namespace.nestedArray) {
    if (object instanceof protobuf.Type || object instanceof protobuf.Enum || object instanceof protobuf.Service) {
      yield { object, pkg: namespace.fullName.replace(/^\./, '') };
    } else if (object instanceof protobuf.Namespace) {
      yield* declarations(object);
    } else {
      throw new Error(`reflection: ${object.fullName} (top-level extensions) is not supported`);
    }
  }
}

function build(protos: ProtoFiles): Buffer[] {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(protos.root, target));
  // keepCase: reflection describes the .proto files, not the loader's camelCased objects.
  root.loadSync([...protos.files], { keepCase: true });
  root.resolveAll();

  const fileOf = (object: protobuf.ReflectionObject): string => {
    // Bundled well-known types (google/protobuf/*.proto) are loaded without a file name.
    if (!object.filename) throw new Error(`reflection: ${object.fullName} comes from no .proto file under ${protos.root}`);
    return relative(protos.root, object.filename).split(sep).join('/');
  };
  const declared = new Map<string, { pkg: string; objects: protobuf.ReflectionObject[] }>();
  for (const { object, pkg } of declarations(root)) {
    const name = fileOf(object);
    // _editionToJSON() is undefined exactly for proto3, the only syntax written here.
    if (object._editionToJSON() !== undefined) throw new Error(`reflection: ${name} is not proto3`);
    const file = declared.get(name) ?? { pkg, objects: [] };
    file.objects.push(object);
    declared.set(name, file);
  }
  return [...declared].map(([name, { pkg, objects }]) => {
    const builder = new FileBuilder(name, fileOf);
    const file: IFileDescriptorProto = {
      name,
      package: pkg || undefined,
      messageType: objects.filter((o) => o instanceof protobuf.Type).map((t) => builder.message(t)),
      enumType: objects.filter((o) => o instanceof protobuf.Enum).map((e) => enumType(e)),
      service: objects.filter((o) => o instanceof protobuf.Service).map((s) => builder.service(s)),
      syntax: 'proto3',
    };
    // Known once the messages and services above have recorded the types they use.
    file.dependency = [...builder.dependencies].sort();
    return Buffer.from(descriptor.FileDescriptorProto.encode(descriptor.FileDescriptorProto.fromObject(file)).finish());
  });
}

const built = new Map<string, Buffer[]>();

/** Encoded FileDescriptorProtos, one per .proto file (its imports included), built once per set. */
export function fileDescriptorProtos(protos: ProtoFiles): Buffer[] {
  const key = JSON.stringify([protos.root, protos.files]);
  let result = built.get(key);
  if (!result) {
    result = build(protos);
    built.set(key, result);
  }
  return result;
}

/** Adds grpc.reflection.v1 and v1alpha describing the given files to `server`. */
/**
 * Adds grpc.reflection to `server`, describing the given files and listing only `services`
 * (the ones this server serves: a client that lists and then calls must find each).
 */
export function addReflection(server: grpc.Server, protos: readonly ProtoFiles[], services: readonly string[]): void {
  const fileDescriptors = protos.flatMap((p) => fileDescriptorProtos(p));
  // @grpc/reflection reads only `fileDescriptorProtos` from the entries of the package
  // definition it is given; one entry carries all the files.
  const definition = { files: { fileDescriptorProtos: fileDescriptors } } as unknown as protoLoader.PackageDefinition;
  new ReflectionService(definition, { services: [...services] }).addToServer(server);
}
