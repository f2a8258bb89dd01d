// Unknown fields: the API server rejects them (kubectl's default field validation is Strict), but
// the schema validators of kubernetes-models accept them. TypeScript's excess-property check does
// not: each rendered object is written as an object literal typed with its kubernetes-models
// interface, and the TypeScript compiler (the repository's own) reports every field the
// interface does not have, at any depth, and every wrong type.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { Obj } from './manifests.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(repoRoot, 'package.json'));
/** Packages holding <group>/<version>/<Kind>.d.ts (the core group "" as v1/<Kind>.d.ts). */
const packages = ['kubernetes-models', '@kubernetes-models/cert-manager', '@kubernetes-models/prometheus-operator', '@kubernetes-models/keda'];
const packageDirs = packages.map((p) => ({ name: p, dir: dirname(require.resolve(`${p}/package.json`)) }));

/** The module and interface of apiVersion/kind, or undefined when no package has it. */
function typeOf(o: Obj): { module: string; name: string } | undefined {
  const apiVersion = String(o.apiVersion ?? '');
  const kind = String(o.kind ?? '');
  if (!/^[A-Za-z0-9.-]+(\/[A-Za-z0-9]+)?$/.test(apiVersion) || !/^[A-Za-z0-9]+$/.test(kind)) return undefined;
  for (const { name, dir } of packageDirs) {
    if (existsSync(join(dir, apiVersion, `${kind}.d.ts`))) return { module: `${name}/${apiVersion}/${kind}`, name: `I${kind}` };
  }
  return undefined;
}

/**
 * The field errors of each object, by index ([] for a clean one): unknown fields, wrong types,
 * missing required fields, as TypeScript reports them against the kubernetes-models interfaces.
 */
export function fieldErrors(objects: Obj[]): string[][] {
  const errors: string[][] = objects.map(() => []);
  const lines: string[] = [];
  const owner: number[] = []; // line -> object index
  const imports = new Map<string, string>();
  objects.forEach((o, i) => {
    const type = typeOf(o);
    if (!type) {
      errors[i]!.push(`no type for apiVersion ${o.apiVersion}, kind ${o.kind}`);
      return;
    }
    const alias = imports.get(type.module) ?? `T${imports.size}`;
    imports.set(type.module, alias);
    const body = JSON.stringify(o, null, 1).split('\n');
    body[0] = `export const o${i}: ${alias} = ${body[0]}`;
    for (const line of body) {
      lines.push(line);
      owner.push(i);
    }
  });
  const header = [...imports].map(([module, alias]) => `import type { I${module.split('/').pop()} as ${alias} } from '${module}';`);
  const text = [...header, ...lines].join('\n') + ';\n';
  const file = join(repoRoot, 'deploy', '__rendered_objects__.ts'); // never written: served by the host below
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
    skipLibCheck: true,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => (resolve(name) === file ? ts.createSourceFile(name, text, language) : getSourceFile(name, language, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => resolve(name) === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || resolve(d.file.fileName) !== file || d.start === undefined) throw new Error(`field check: ${message}`);
    const line = d.file.getLineAndCharacterOfPosition(d.start).line - header.length;
    const index = owner[line];
    if (index === undefined) throw new Error(`field check (line ${line}): ${message}`);
    errors[index]!.push(`${lines[line]!.trim()}: ${message.split('\n').pop()}`);
  }
  return errors;
}
