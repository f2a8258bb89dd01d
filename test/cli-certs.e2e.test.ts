/**
 * `infermesh certs` as a user runs it: the files it writes, and the names in them, read back
 * with Node's X.509 parser (what the mesh's TLS check reads).
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { identitiesOf } from '@infermesh/grpc';
import { ROOT } from './helpers/mesh.js';

function certs(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [join(ROOT, 'cli/dist/main.js'), 'certs', ...args], { timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

describe('infermesh certs', () => {
  it('writes a CA and one certificate per service, each naming its mesh identity, keys readable by their owner only', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'infermesh-certs-')), 'out');
    const run = await certs(['--dir', dir, '--workers', 'node-a-gpu0,node-b-gpu0']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/certificates for router, preprocessor, monitor, operator, worker \(workers: 2\)/);
    const ca = new X509Certificate(await readFile(join(dir, 'ca.crt')));
    const names = async (stem: string) => {
      const cert = new X509Certificate(await readFile(join(dir, `${stem}.crt`)));
      expect(cert.verify(ca.publicKey), `${stem} is signed by the CA`).toBe(true);
      expect((await stat(join(dir, `${stem}.key`))).mode & 0o077, `${stem}.key mode`).toBe(0);
      return identitiesOf({ subjectaltname: cert.subjectAltName });
    };
    expect(await names('router')).toEqual([{ role: 'router', name: 'router' }]);
    expect(await names('operator')).toEqual([{ role: 'operator', name: 'operator' }]);
    expect(await names('worker')).toEqual([{ role: 'worker', name: 'node-a-gpu0' }, { role: 'worker', name: 'node-b-gpu0' }]);
  });

  it('refuses a worker id that is not one, naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'infermesh-certs-'));
    const run = await certs(['--dir', dir, '--workers', 'ok,not/an id']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/'not\/an id' is not a worker id/);
  });

  it('refuses an unknown flag', async () => {
    const run = await certs(['--bogus']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/bogus/);
  });
});
