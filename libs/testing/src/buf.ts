/**
 * The buf CLI (npm package @bufbuild/buf), a real gRPC reflection client: tests call the
 * mesh's servers through reflection with it, as a user does with `buf curl` or grpcurl.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';

/** The buf launcher that `npm ci` installs; without it every test that needs it fails, saying so. */
function bufLauncher(): string {
  try {
    return createRequire(import.meta.url).resolve('@bufbuild/buf/bin/buf');
  } catch (error) {
    throw new Error('the buf CLI is missing: tests run it from the npm package @bufbuild/buf; run `npm ci`', { cause: error });
  }
}

/** Runs buf and resolves with what it prints; rejects with its stderr when it exits non-zero. */
export function buf(args: string[], encoding: 'utf8'): Promise<string>;
export function buf(args: string[], encoding: 'buffer'): Promise<Buffer>;
export function buf(args: string[], encoding: 'utf8' | 'buffer'): Promise<string | Buffer> {
  // Asynchronous: a server answering buf may run in the calling process.
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [bufLauncher(), ...args], { encoding, timeout: 20_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`buf ${args.join(' ')} failed: ${String(stderr).trim() || error.message}`, { cause: error }));
      else resolve(stdout);
    });
  });
}

/** `buf curl` of one method of a plaintext gRPC server through reflection; the answer as JSON. */
export async function bufCurl(address: string, method: string, body?: object): Promise<unknown> {
  const data = body === undefined ? [] : ['-d', JSON.stringify(body)];
  return JSON.parse(await buf(['curl', '--protocol', 'grpc', '--http2-prior-knowledge', ...data, `http://${address}/${method}`], 'utf8'));
}
