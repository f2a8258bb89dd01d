/**
 * Polls `check` every 100 ms until it gives a value, and returns it; throws after
 * `timeoutMs`, naming `what` and adding `detail()` (a service's last log lines, what was
 * seen). A check that throws counts as "not yet" (a connection still coming back).
 */
export async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000, detail: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await Promise.resolve().then(check).catch(() => undefined);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms${detail() ? `\n${detail()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
