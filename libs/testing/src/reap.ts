import type { ChildProcess } from 'node:child_process';

/** Children still running: if this process dies without stopping them (a crashed test, a closed pipe), they go with it. */
const running = new Set<ChildProcess>();
let listening = false;

export function reapOnExit(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (listening) return;
  listening = true;
  // One listener for every child this process starts (a benchmark starts dozens).
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}
