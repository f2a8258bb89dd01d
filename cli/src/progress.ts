/** A progress line on stderr: items, items/s, ETA. Redrawn in place on a terminal, a line every 5 s otherwise. */
export class Progress {
  private readonly started = Date.now();
  private lastDraw = 0;
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly total: number | undefined, private readonly label: string) {}

  update(done: number, errors: number, final = false): void {
    const now = Date.now();
    if (!final && now - this.lastDraw < (this.tty ? 200 : 5000)) return;
    this.lastDraw = now;
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const parts = [this.label];
    if (this.total !== undefined && this.total > 0) {
      const fraction = Math.min(1, done / this.total);
      const width = 24;
      const filled = Math.round(fraction * width);
      parts.push(`[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${this.total} ${(fraction * 100).toFixed(0)}%`);
    } else {
      parts.push(`${done} items`);
    }
    parts.push(`${rate.toFixed(1)} items/s`);
    if (this.total !== undefined && rate > 0 && done < this.total) parts.push(`ETA ${formatSeconds((this.total - done) / rate)}`);
    if (errors > 0) parts.push(`${errors} errors`);
    const line = parts.join('  ');
    process.stderr.write(this.tty ? `\r\x1b[2K${line}${final ? '\n' : ''}` : `${line}\n`);
  }
}

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes}m${Math.ceil(seconds % 60)}s` : `${Math.floor(minutes / 60)}h${minutes % 60}m`;
}
