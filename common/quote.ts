/**
 * Input quoted in an error line (an id, an inventory line, a path, an option value) can hold
 * anything: terminal escape sequences that rewrite the operator's screen, newlines that forge a
 * second line, binary garbage, or ten kilobytes. Every quoting site passes it through here.
 */

/** Longest quoted input, in characters, before it is cut. */
export const MAX_QUOTED = 120;

// Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned code points,
// the Unicode line separators, and U+FFFD (what undecodable bytes became) are not shown raw.
const UNSAFE = /[\p{C}\u2028\u2029\ufffd\\]/gu;
// A whole message has its quoted parts escaped already: its backslashes are theirs.
const UNSAFE_IN_MESSAGE = /[\p{C}\u2028\u2029]/gu;

function escapeChar(ch: string): string {
  if (ch === '\\') return '\\\\';
  if (ch === '\n') return '\\n';
  if (ch === '\r') return '\\r';
  if (ch === '\t') return '\\t';
  const cp = ch.codePointAt(0)!;
  return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
}

/** Escapes what a terminal would act on; keeps the text otherwise as it is. */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/** `input` safe to print inside an error line: escaped, and cut to `max` characters with a note of the rest. */
export function shown(input: unknown, max = MAX_QUOTED): string {
  const text = typeof input === 'string' ? input : Buffer.isBuffer(input) ? input.toString('latin1') : String(input);
  const chars = [...text];
  const head = chars.length > max ? chars.slice(0, max).join('') : text;
  const rest = chars.length - max;
  return escapeControl(head) + (rest > 0 ? `... (${rest} more characters)` : '');
}

/** A whole message made safe for one line of stderr: no control characters, at most `max` characters. */
export function oneLine(message: string, max = 4000): string {
  const chars = [...message];
  const text = chars.length > max ? `${chars.slice(0, max).join('')}... (${chars.length - max} more characters)` : message;
  return text.replace(UNSAFE_IN_MESSAGE, escapeChar);
}
