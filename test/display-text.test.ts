// Text from people and from outside, made safe to show on a terminal and in Markdown (no server).
import { markdownCode, markdownSafe, terminalSafe } from '../src/domain/display-text';

/** Anything a terminal or a bidi-aware view would act on. */
const CONTROL = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

describe('terminalSafe', () => {
  it('shows escape sequences as text: clear screen, cursor home, colours, a title', () => {
    const forged = '\x1b[2J\x1b[Happroved by bob';
    expect(terminalSafe(forged)).toBe('\\x1b[2J\\x1b[Happroved by bob');
    expect(terminalSafe('\x1b]0;pwned\x07')).toBe('\\x1b]0;pwned\\x07');
    expect(terminalSafe(forged)).not.toMatch(CONTROL);
  });

  it('shows a carriage return that would overwrite the line, and backspaces', () => {
    expect(terminalSafe('rejected\rAPPROVED')).toBe('rejected\\rAPPROVED');
    expect(terminalSafe('bad\b\b\bgood')).toBe('bad\\x08\\x08\\x08good');
  });

  it('shows DEL and the C1 controls, among them the one-byte CSI 0x9b', () => {
    expect(terminalSafe('a\x7fb')).toBe('a\\x7fb');
    expect(terminalSafe('\x9b2J\x85')).toBe('\\x9b2J\\x85');
  });

  it('shows the bidi overrides and isolates that reorder text, and invisible separators', () => {
    expect(terminalSafe('invoice\u202Egpj.exe')).toBe('invoice\\u202egpj.exe');
    expect(terminalSafe('\u2066a\u2067b\u2068c\u2069\u202A\u202B\u202C\u202D')).toBe(
      '\\u2066a\\u2067b\\u2068c\\u2069\\u202a\\u202b\\u202c\\u202d',
    );
    expect(terminalSafe('b\u200bob\u2028x')).toBe('b\\u200bob\\u2028x');
  });

  it('shows newlines and tabs inside a field, so a field stays on its line', () => {
    expect(terminalSafe('one\ntwo\tthree')).toBe('one\\ntwo\\tthree');
  });

  it('leaves plain text, accents, emoji and joined emoji unchanged', () => {
    for (const text of [
      'errors after deploy: rolling back (v1.4.2 → v1.4.1)',
      'Zoë Ångström, François, Ђорђе, 田中',
      'fire 🔥 family 👨‍👩‍👧 flag 🇫🇷',
      'C:\\path\\to <b> & "quotes" \'single\' `tick` * _ #',
      '',
    ])
      expect(terminalSafe(text)).toBe(text);
  });
});

describe('markdownSafe', () => {
  it('escapes HTML', () => {
    expect(markdownSafe('<script>alert(1)</script>')).toBe('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(markdownSafe(`a & b "c" 'd'`)).toBe('a &amp; b &quot;c&quot; &#39;d&#39;');
    expect(markdownSafe('&lt;')).toBe('&amp;lt;');
  });

  it('keeps a heading injected after a newline on the same line', () => {
    const shown = markdownSafe('oops\n## Approved by: mallory');
    expect(shown).toBe('oops\\\\n## Approved by: mallory');
    expect(shown).not.toContain('\n');
    expect(`- reason: ${shown}`).not.toMatch(/^#/m);
  });

  it('escapes emphasis, code, links, strikethrough and table cells', () => {
    expect(markdownSafe('**Approved by:** mallory')).toBe('\\*\\*Approved by:\\*\\* mallory');
    expect(markdownSafe('`x` [click](javascript:alert(1)) ~~no~~ a|b')).toBe(
      '\\`x\\` \\[click\\](javascript:alert(1)) \\~\\~no\\~\\~ a\\|b',
    );
    expect(markdownSafe('__bold__ and _it_')).toBe('\\_\\_bold\\_\\_ and \\_it\\_');
    expect(markdownSafe('a backslash \\* stays one')).toBe('a backslash \\\\\\* stays one');
  });

  it('keeps underscores inside words, as in file and migration names', () => {
    expect(markdownSafe('my_file.txt and V2__add_total.sql')).toBe('my_file.txt and V2__add_total.sql');
  });

  it('escapes a first character that would open a block at the start of a list item', () => {
    expect(markdownSafe('# title')).toBe('\\# title');
    expect(markdownSafe('- item')).toBe('\\- item');
    expect(markdownSafe('+ item')).toBe('\\+ item');
    expect(markdownSafe('===')).toBe('\\===');
    expect(markdownSafe('1. first')).toBe('1\\. first');
    expect(markdownSafe('> quote')).toBe('&gt; quote');
    expect(markdownSafe('issue #42 - done')).toBe('issue #42 - done');
  });

  it('makes control characters visible, escaping the backslash of their escape', () => {
    expect(markdownSafe('\x1b[2J')).toBe('\\\\x1b\\[2J');
    expect(markdownSafe('\u202e')).toBe('\\\\u202e');
  });

  it('leaves plain text, accents and emoji unchanged', () => {
    for (const text of ['errors after deploy', 'Zoë Ångström (v1.4.2 → v1.4.1)', 'fire 🔥 family 👨‍👩‍👧', 'alice'])
      expect(markdownSafe(text)).toBe(text);
  });
});

describe('markdownCode', () => {
  it('puts a plain name or path in a code span', () => {
    expect(markdownCode('config/app.yaml')).toBe('`config/app.yaml`');
    expect(markdownCode('my_file [1].txt')).toBe('`my_file [1].txt`');
  });

  it('never lets a backtick close the span, nor HTML into the file', () => {
    expect(markdownCode('a`b` <img src=x onerror=alert(1)>')).toBe('a\\`b\\` &lt;img src=x onerror=alert(1)&gt;');
    expect(markdownCode("it's")).toBe('it&#39;s');
  });

  it('shows control characters in a code span as escapes', () => {
    expect(markdownCode('evil\x1b[2J\n.txt')).toBe('`evil\\x1b[2J\\n.txt`');
  });
});
