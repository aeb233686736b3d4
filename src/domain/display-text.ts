// Text from people and from outside (a reason, a user name, a version label, a file name, an
// error) shown safely: on a terminal it cannot move the cursor, clear the screen or reorder what
// is shown, and in Markdown it cannot become HTML or structure. Only the display changes; the
// data, and --json, keep the text as typed. Pure: the workflow renders its report with it.

/**
 * What a terminal, or a bidi-aware view, acts on instead of showing: C0 controls (newline and
 * tab too, as a field is one line), DEL, C1 controls (0x9b is a CSI of its own), the Arabic
 * letter mark, the left-to-right and right-to-left marks, the bidi embeddings, overrides and
 * isolates, the line and paragraph separators, and the invisible zero width space, word joiner
 * and byte order mark, which make two names look alike. Joiners (U+200C, U+200D) stay: emoji
 * and scripts need them.
 */
const UNSAFE =
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function visible(char: string): string {
  const named = NAMED[char];
  if (named) return named;
  const code = char.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * The text with every control character, bidi control and invisible separator shown as an
 * escape (`\x1b`, `\r`, `\n`, `\u202e`), so an approver sees that something odd was typed
 * and nothing is done to their terminal. Other text, accents and emoji included, is unchanged.
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, visible);
}

const HTML: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * The text for an inline position of Markdown (after a label, in a table cell, a list item or
 * a heading): made terminal-safe (so a newline cannot start a heading or a list), HTML-escaped,
 * and with the characters that open emphasis, code, links, strikethrough or table cells
 * backslash-escaped. A first character that would open a block at the start of a list item
 * (`#`, `+`, `-`, `=`, `1.`) is escaped too. Renders as the text typed, escapes shown.
 */
export function markdownSafe(text: string): string {
  const escaped = terminalSafe(text)
    .replace(/[&<>"']/g, (c) => HTML[c]!)
    .replace(/[\\`*[\]|~]/g, '\\$&')
    // Underscores inside a word (my_file, V2__add_total) do not emphasise; others may.
    .replace(/_+/g, (run, at: number, all: string) =>
      /[\p{L}\p{N}]/u.test(all.charAt(at - 1)) && /[\p{L}\p{N}]/u.test(all.charAt(at + run.length))
        ? run
        : run.replace(/_/g, '\\_'),
    );
  return escaped.replace(/^[#+=-]/, '\\$&').replace(/^(\d+)([.)])/, '$1\\$2');
}

/**
 * A name or path shown as code (`app.yaml`) when it can be, terminal-safe. Text holding a
 * backtick, which could close the span, or a character HTML gives meaning to is shown with
 * markdownSafe instead: the same text on screen, never raw HTML in the file.
 */
export function markdownCode(text: string): string {
  const safe = terminalSafe(text);
  if (safe === '' || /[`&<>"']/.test(safe) || /^ .* $/.test(safe)) return markdownSafe(text);
  return `\`${safe}\``;
}
