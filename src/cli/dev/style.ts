/** The styles the dev printer uses; each maps to one ANSI SGR code. */
const kCodes = {
  bold: 1,
  dim: 2,
  red: 31,
  green: 32,
  yellow: 33,
  blue: 34,
  magenta: 35,
  cyan: 36,
} as const;

export type StyleName = keyof typeof kCodes;
export type Style = (name: StyleName, text: string) => string;

/**
 * Whether to colour output: `NO_COLOR` (any non-empty value) turns it off, `FORCE_COLOR`
 * (anything but `0`) turns it on, otherwise only a terminal gets colour.
 */
export function wantsColor(out: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return out.isTTY === true;
}

export function makeStyle(color: boolean): Style {
  if (!color) return (_name, text) => text;
  return (name, text) => `\u001b[${kCodes[name]}m${text}\u001b[0m`;
}
