// The one escaping function for everything the CLI echoes: ids come from users and from run state (run ids,
// run keys, foreach labels, step names), and a control character in one must not move the cursor, clear the
// screen, recolour the terminal or forge a line of output.

// C0 controls, DEL, C1 controls, and the bidirectional overrides that reorder what a terminal shows.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const CONTROL_BUT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' };

function escapeChar(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/**
 * `text` with every control character shown as an escape (`\e`, `\n`, `\x07`, `\u{202e}`). `lines: true` keeps
 * newlines and tabs (for multi-line output Kaon itself lays out) and escapes the rest.
 */
export function escapeForEcho(text: string, opts: { lines?: boolean } = {}): string {
  return text.replace(opts.lines ? CONTROL_BUT_LINES : CONTROL, escapeChar);
}

/**
 * A run state for the terminal renderers: its step keys and names (users' foreach labels among them) escaped
 * entirely, newlines too, so a label cannot forge a row. JSON output keeps the real keys (JSON escapes them).
 */
export function escapeRunState<S extends { steps: readonly { key: string; step: string }[] }>(state: S): S {
  return { ...state, steps: state.steps.map((st) => ({ ...st, key: escapeForEcho(st.key), step: escapeForEcho(st.step) })) };
}
