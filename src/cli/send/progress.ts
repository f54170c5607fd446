export interface ProgressState {
  sent: number;
  /** Events to send, when known up front. */
  total: number | undefined;
  /** The total is an estimate (a video's duration × frame rate). */
  approx?: boolean;
  outputs: number;
  elapsedMs: number;
}

const kBarWidth = 24;

/** One line of progress, at most `columns - 1` characters wide so the terminal never wraps it. */
export function renderProgress(s: ProgressState, columns: number): string {
  const secs = s.elapsedMs / 1000;
  const rate = secs > 0 ? s.sent / secs : 0;
  const count = s.total === undefined ? `${s.sent} events` : `${s.sent}/${s.approx ? "~" : ""}${s.total} events`;
  const text = `${count}  ${rate.toFixed(1)}/s  ${s.outputs} output${s.outputs === 1 ? "" : "s"}  ${secs.toFixed(1)}s`;
  let line = text;
  if (s.total !== undefined && s.total > 0 && columns - 1 >= text.length + kBarWidth + 3) {
    const filled = Math.min(kBarWidth, Math.round((s.sent / s.total) * kBarWidth));
    line = `[${"#".repeat(filled)}${"-".repeat(kBarWidth - filled)}] ${text}`;
  }
  return line.length > columns - 1 ? line.slice(0, Math.max(0, columns - 1)) : line;
}

/**
 * A progress line on a terminal's stderr, redrawn at most 10 times a second. Nothing at all
 * when stderr is not a terminal. Anything else printed to the terminal goes through `print`,
 * which takes the line away first so the two never mix.
 */
export class ProgressBar {
  readonly #out: NodeJS.WriteStream;
  readonly #state: () => ProgressState;
  #timer: NodeJS.Timeout | undefined;
  #drawn = false;

  constructor(out: NodeJS.WriteStream, state: () => ProgressState, enabled = true) {
    this.#out = out;
    this.#state = state;
    if (!enabled || !out.isTTY) return;
    this.#timer = setInterval(() => this.#draw(), 100);
    this.#timer.unref();
  }

  get active(): boolean {
    return this.#timer !== undefined;
  }

  #draw(): void {
    this.#out.write(`\r${renderProgress(this.#state(), this.#out.columns || 80)}\x1b[K`);
    this.#drawn = true;
  }

  #clear(): void {
    if (!this.#drawn) return;
    this.#out.write("\r\x1b[K");
    this.#drawn = false;
  }

  /** Writes around the bar; it comes back at the next redraw. */
  print(stream: NodeJS.WritableStream, text: string): void {
    // Output piped elsewhere cannot collide with the bar: no need to blink it away.
    if (stream === this.#out || (stream as NodeJS.WriteStream).isTTY) this.#clear();
    stream.write(text);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#clear();
  }
}
