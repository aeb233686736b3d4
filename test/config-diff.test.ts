// Config files summarized on the host that holds them and compared key by key: exact keys and
// details for each format, secrets that never leave the host in clear (planted values are looked
// for in the whole summary and in every difference), files that do not parse compared by lines,
// and the bounds that keep a summary small whatever the file.
import {
  compareConfigs,
  configFormatOf,
  isSecretKey,
  summarizeConfig,
  type ConfigFormat,
  type ConfigSummary,
  type SummarizeOptions,
} from '../src/components/files/config-diff';

const OPTIONS: SummarizeOptions = { hashKey: 'scan-key-derived-from-the-repository-password', secretKeys: [] };

function summarize(text: string, format: ConfigFormat | undefined, options: Partial<SummarizeOptions> = {}) {
  return summarizeConfig(text, format, { ...OPTIONS, ...options });
}

function compare(
  filePath: string,
  from: string,
  to: string,
  options: Partial<SummarizeOptions> = {},
  format: ConfigFormat | undefined = configFormatOf(filePath),
) {
  const summaries = { from: summarize(from, format, options), to: summarize(to, format, options) };
  return { ...summaries, differences: compareConfigs(filePath, summaries.from, summaries.to) };
}

function expectNowhere(planted: string, ...things: unknown[]) {
  for (const thing of things) expect(JSON.stringify(thing)).not.toContain(planted);
}

function keysOf(summary: ConfigSummary) {
  if (!summary.parsed) throw new Error(`expected a parsed summary, got: ${summary.error}`);
  return summary.keys;
}

describe('config formats by file name', () => {
  it.each([
    ['deploy/app.yaml', 'yaml'],
    ['values.YML', 'yaml'],
    ['package.json', 'json'],
    ['pyproject.toml', 'toml'],
    ['php.ini', 'ini'],
    ['setup.cfg', 'ini'],
    ['.env', 'dotenv'],
    ['conf/production.env', 'dotenv'],
    ['.env.production', 'dotenv'],
    ['application.properties', 'properties'],
    ['notes.txt', undefined],
    ['Makefile', undefined],
    ['weird.constructor', undefined],
  ])('reads %s as %s', (filePath, format) => {
    expect(configFormatOf(filePath)).toBe(format);
  });
});

describe('comparing parsed config files key by key', () => {
  it('reports exactly the changed dotted keys of a nested YAML file, from → to', () => {
    const from = 'database:\n  host: db-1\n  pool:\n    max: 10\n    min: 1\nlog: info\n';
    const to = 'database:\n  host: db-2\n  pool:\n    max: 20\n    min: 1\nlog: info\n';
    expect(compare('app.yaml', from, to).differences).toEqual([
      { subject: 'app.yaml:database.host', change: 'changed', detail: '"db-1" → "db-2"', aspect: 'key' },
      { subject: 'app.yaml:database.pool.max', change: 'changed', detail: '10 → 20', aspect: 'key' },
    ]);
  });

  it('reports changed, added and removed keys of a nested JSON file, relative to from', () => {
    const from = JSON.stringify({ server: { port: 8080, tls: true }, cache: { ttl: 60 }, legacy: 'x' });
    const to = JSON.stringify({ server: { port: 9090, tls: true }, cache: { ttl: 60, size: 512 } });
    expect(compare('config.json', from, to).differences).toEqual([
      { subject: 'config.json:cache.size', change: 'added', detail: '(absent) → 512', aspect: 'key' },
      { subject: 'config.json:legacy', change: 'removed', detail: '"x" → (absent)', aspect: 'key' },
      { subject: 'config.json:server.port', change: 'changed', detail: '8080 → 9090', aspect: 'key' },
    ]);
  });

  it('names array elements by index, quotes keys with dots, and keeps empty objects and arrays as values', () => {
    const from = JSON.stringify({
      servers: [{ host: 'a' }, { host: 'b' }],
      labels: { 'app.kubernetes.io/name': 'shop' },
      extra: {},
      tags: [],
    });
    const to = JSON.stringify({
      servers: [{ host: 'a' }, { host: 'c' }, { host: 'd' }],
      labels: { 'app.kubernetes.io/name': 'store' },
      extra: { on: true },
      tags: [],
    });
    const { from: before, differences } = compare('deploy.json', from, to);
    expect(Object.keys(keysOf(before))).toEqual([
      'extra',
      'labels["app.kubernetes.io/name"]',
      'servers[0].host',
      'servers[1].host',
      'tags',
    ]);
    expect(keysOf(before).extra?.v).toBe('{}');
    expect(differences).toEqual([
      { subject: 'deploy.json:extra', change: 'removed', detail: '{} → (absent)', aspect: 'key' },
      { subject: 'deploy.json:extra.on', change: 'added', detail: '(absent) → true', aspect: 'key' },
      {
        subject: 'deploy.json:labels["app.kubernetes.io/name"]',
        change: 'changed',
        detail: '"shop" → "store"',
        aspect: 'key',
      },
      { subject: 'deploy.json:servers[1].host', change: 'changed', detail: '"b" → "c"', aspect: 'key' },
      { subject: 'deploy.json:servers[2].host', change: 'added', detail: '(absent) → "d"', aspect: 'key' },
    ]);
  });

  it('tells the number 10 from the string "10"', () => {
    expect(compare('app.yaml', 'replicas: 10\n', 'replicas: "10"\n').differences).toEqual([
      { subject: 'app.yaml:replicas', change: 'changed', detail: '10 → "10"', aspect: 'key' },
    ]);
  });

  it('reports nothing for the same values written differently', () => {
    const from = 'a: 1\nb: {c: [x, y]}\n';
    const to = '# reformatted\nb:\n  c:\n    - x\n    - "y"\na: 1\n';
    expect(compare('app.yaml', from, to).differences).toEqual([]);
  });

  it.each([
    [
      'pyproject.toml',
      '[tool.pool]\nmax = 10\nname = "a"\n',
      '[tool.pool]\nmax = 20\nname = "a"\n',
      'tool.pool.max',
      '10 → 20',
    ],
    [
      'php.ini',
      '[database.pool]\nmax = 10\nname = a\n',
      '[database.pool]\nmax = 20\nname = a\n',
      'database.pool.max',
      '"10" → "20"',
    ],
    ['.env.production', 'PORT=8080\nexport HOST=a\n', 'PORT=9090\nexport HOST=a\n', 'PORT', '"8080" → "9090"'],
    ['app.properties', 'db.pool.max=10\ndb.name = a\n', 'db.pool.max=20\ndb.name = a\n', 'db.pool.max', '"10" → "20"'],
  ])('parses %s and reports its one changed key', (filePath, from, to, key, detail) => {
    const result = compare(filePath, from, to);
    expect(result.from.parsed).toBe(true);
    expect(result.differences).toEqual([{ subject: `${filePath}:${key}`, change: 'changed', detail, aspect: 'key' }]);
  });

  it('compares TOML dates by their ISO form', () => {
    expect(compare('a.toml', 'released = 1979-05-27\n', 'released = 1979-05-28\n').differences).toEqual([
      { subject: 'a.toml:released', change: 'changed', detail: '"1979-05-27" → "1979-05-28"', aspect: 'key' },
    ]);
  });

  it('prefixes keys with the document number in a multi-document YAML file, and only then', () => {
    const from = 'kind: Service\nport: 80\n---\nkind: Deployment\nreplicas: 2\n';
    const to = 'kind: Service\nport: 80\n---\nkind: Deployment\nreplicas: 3\n';
    const result = compare('k8s.yaml', from, to);
    expect(Object.keys(keysOf(result.from))).toEqual(['#1.kind', '#1.port', '#2.kind', '#2.replicas']);
    expect(result.differences).toEqual([
      { subject: 'k8s.yaml:#2.replicas', change: 'changed', detail: '2 → 3', aspect: 'key' },
    ]);
    expect(Object.keys(keysOf(summarize('kind: Service\nport: 80\n', 'yaml')))).toEqual(['kind', 'port']);
  });
});

describe('secret values', () => {
  it('never shows a changed password, and says only that it changed', () => {
    const result = compare(
      'app.yaml',
      'database:\n  host: db\n  password: hunter2-PLANTED\n',
      'database:\n  host: db\n  password: swordfish-PLANTED\n',
    );
    expectNowhere('PLANTED', result.from, result.to, result.differences);
    expect(keysOf(result.from)['database.password']).toEqual({
      h: expect.stringMatching(/^[0-9a-f]{32}$/),
      secret: true,
    });
    expect(result.differences).toEqual([
      { subject: 'app.yaml:database.password', change: 'changed', detail: '«redacted» changed', aspect: 'key' },
    ]);
  });

  it('reports no difference for an equal secret', () => {
    const text = 'database:\n  password: hunter2-PLANTED\n';
    const result = compare('app.yaml', text, text);
    expect(result.differences).toEqual([]);
    expectNowhere('PLANTED', result.from);
  });

  it('redacts an .env token, and a secret that is added or removed', () => {
    const result = compare(
      '.env',
      'API_TOKEN=tok-PLANTED-1\nOLD_SECRET=gone-PLANTED\n',
      'API_TOKEN=tok-PLANTED-2\nDB_PASSWORD=new-PLANTED\n',
    );
    expectNowhere('PLANTED', result.from, result.to, result.differences);
    expect(result.differences).toEqual([
      { subject: '.env:API_TOKEN', change: 'changed', detail: '«redacted» changed', aspect: 'key' },
      { subject: '.env:DB_PASSWORD', change: 'added', detail: '«redacted» added', aspect: 'key' },
      { subject: '.env:OLD_SECRET', change: 'removed', detail: '«redacted» removed', aspect: 'key' },
    ]);
  });

  it('redacts the keys a manifest glob names, and everything under a secret-looking parent', () => {
    const options = { secretKeys: ['payments.*.pin'] };
    const result = compare(
      'app.yaml',
      'payments:\n  visa:\n    pin: 1234-PLANTED\n    limit: 100\ncredentials:\n  user: admin-PLANTED\n',
      'payments:\n  visa:\n    pin: 4321-PLANTED\n    limit: 200\ncredentials:\n  user: root-PLANTED\n',
      options,
    );
    expectNowhere('PLANTED', result.from, result.to, result.differences);
    expect(result.differences).toEqual([
      { subject: 'app.yaml:credentials.user', change: 'changed', detail: '«redacted» changed', aspect: 'key' },
      { subject: 'app.yaml:payments.visa.limit', change: 'changed', detail: '100 → 200', aspect: 'key' },
      { subject: 'app.yaml:payments.visa.pin', change: 'changed', detail: '«redacted» changed', aspect: 'key' },
    ]);
  });

  it('redacts values shaped like credentials under harmless keys', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVEVEIn0.c2lnbmF0dXJl';
    const text = [
      `session: ${jwt}`,
      'aws: AKIAPLANTED000000000',
      'database_url: postgres://app:hunter2-PLANTED@db/app',
      'pem: "-----BEGIN RSA PRIVATE KEY-----\\nMIIPLANTED\\n-----END RSA PRIVATE KEY-----"',
      'note: hello',
      'mssql: "Server=db;User Id=sa;Password=AdoPW-PLANTED"',
      'storage: DefaultEndpointsProtocol=https;AccountName=a;AccountKey=PLANTED==',
      'query: https://api.example.com/v1?user=a&token=PLANTED',
      'pool: "min=1;max=10"',
    ].join('\n');
    const summary = summarize(text, 'yaml');
    expectNowhere('PLANTED', summary);
    expectNowhere(jwt, summary);
    expect(Object.entries(keysOf(summary)).map(([key, value]) => [key, value.secret ?? false])).toEqual([
      ['aws', true],
      ['database_url', true],
      ['mssql', true],
      ['note', false],
      ['pem', true],
      ['pool', false],
      ['query', true],
      ['session', true],
      ['storage', true],
    ]);
  });

  it.each([
    ['database.password', true],
    ['credentials.user', true],
    ['stripe.apiKey', true],
    ['API_TOKEN', true],
    ['DBPASSWORD', true],
    ['tls.private_key', true],
    ['servers[0].client_secret', true],
    ['labels["vault.token"]', true],
    ['payments.visa.pin', true],
    ['#2.payments.visa.pin', true],
    ['payments.pin', false],
    ['database.host', false],
    ['keyboard.layout', false],
    ['replicas', false],
  ])('takes %s for a secret key: %s', (key, secret) => {
    expect(isSecretKey(key, ['payments.*.pin'])).toBe(secret);
  });

  it('applies ** globs across any number of segments and * within one', () => {
    expect(isSecretKey('a.b.c.pin', ['**.pin'])).toBe(true);
    expect(isSecretKey('pin', ['**.pin'])).toBe(true);
    expect(isSecretKey('app.vault_x.value', ['app.vault_*'])).toBe(true);
    expect(isSecretKey('app.vaults.value', ['app.vault_*'])).toBe(false);
  });
});

describe('files that do not parse', () => {
  const broken = (value: string, password: string, extra = '') =>
    `name: shop\nvalue: ${value}\nitems: [\npassword: ${password}\n${extra}port: 80\n`;

  it('falls back to lines on both sides: one unparseable warning, then the lines that differ', () => {
    const result = compare(
      'app.yaml',
      broken('1', 'hunter2-PLANTED'),
      broken('2', 'swordfish-PLANTED', 'debug: true\n'),
    );
    expectNowhere('PLANTED', result.from, result.to, result.differences);
    const error = 'line 4, column 1: Flow sequence in block collection must be sufficiently indented and end with a ]';
    expect(result.from).toMatchObject({ parsed: false, format: 'yaml', error });
    expect(result.differences).toEqual([
      {
        subject: 'app.yaml',
        change: 'changed',
        detail: `from could not be parsed as yaml (${error}); to could not be parsed as yaml (${error})`,
        severity: 'warning',
        aspect: 'unparseable',
        unseen: { prefix: 'app.yaml:', aspect: 'key' },
      },
      { subject: 'app.yaml:line 2', change: 'changed', detail: 'value: 1 → value: 2', aspect: 'line' },
      { subject: 'app.yaml:line 4', change: 'changed', detail: '«redacted» changed', aspect: 'line' },
      { subject: 'app.yaml:line 5', change: 'added', detail: '(absent) → debug: true', aspect: 'line' },
    ]);
  });

  it('when the file parses on one side only, both are summarized by lines (asked again) and line-diffed', () => {
    const text = broken('1', 'hunter2-PLANTED');
    // The first summaries, as a scan's first question gets them: keys on one side, lines on the other.
    expect(compare('app.yaml', 'name: shop\n', text).from.parsed).toBe(true);
    // Asked again by lines: the side that parses says so, and the lines are compared.
    const from = summarize('name: shop\nvalue: 2\n', 'yaml', { lines: true });
    expect(from).toMatchObject({ parsed: false, parses: true, error: '' });
    const to = summarize(text, 'yaml', { lines: true });
    const differences = compareConfigs('app.yaml', from, to, { from: 'production', to: 'regression' });
    expectNowhere('PLANTED', to, differences);
    expect(differences[0]).toEqual({
      subject: 'app.yaml',
      change: 'changed',
      detail:
        'production parsed as yaml; regression could not be parsed as yaml (line 4, column 1: Flow sequence in ' +
        'block collection must be sufficiently indented and end with a ])',
      severity: 'warning',
      aspect: 'unparseable',
      unseen: { prefix: 'app.yaml:', aspect: 'key' },
    });
    expect(differences.slice(1).map((d) => `${d.subject} ${d.change}: ${d.detail}`)).toEqual([
      'app.yaml:line 2 changed: value: 2 → value: 1',
      'app.yaml:line 3 added: (absent) → items: [',
      'app.yaml:line 4 added: «redacted» added',
      'app.yaml:line 5 added: (absent) → port: 80',
    ]);
  });

  it('reports nothing when the same broken file is on both sides', () => {
    const text = broken('1', 'hunter2-PLANTED');
    expect(compare('app.yaml', text, text).differences).toEqual([]);
  });

  it('says where JSON failed without quoting the text around it', () => {
    const summary = summarize('{\n  "user": "app",\n  "password": hunter2-PLANTED\n}\n', 'json');
    expectNowhere('PLANTED', summary);
    expect(summary).toMatchObject({ parsed: false, format: 'json', error: 'unexpected token' });
    expect(summarize('{\n  "a": 1\n  "b": 2\n}\n', 'json')).toMatchObject({
      error: "line 3, column 3: Expected ',' or '}' after property value",
    });
  });

  it('numbers a removed line on the from side and an added line on the to side', () => {
    const from = 'a\nb\nc\nd\ne\n';
    const to = 'a\nc\nd\nX\ne\n';
    expect(compare('notes.txt', from, to).differences.slice(1)).toEqual([
      { subject: 'notes.txt:line 2', change: 'removed', detail: 'b → (absent)', aspect: 'line' },
      { subject: 'notes.txt:line 4', change: 'added', detail: '(absent) → X', aspect: 'line' },
    ]);
  });

  it('summarizes a file without a config format by its lines, hiding lines that hold or sit under secrets', () => {
    const text = [
      'host: db',
      'credentials:',
      '  user: admin-PLANTED',
      'port: 5432',
      '# password = old-PLANTED',
      '-----BEGIN OPENSSH PRIVATE KEY-----',
      'b3BlbnNzaC1rZXktdjEAAAAAPLANTED',
      '-----END OPENSSH PRIVATE KEY-----',
      'requirepass PLANTED',
    ].join('\n');
    const summary = summarize(text, undefined);
    expectNowhere('PLANTED', summary);
    expect(summary).toMatchObject({ parsed: false, format: 'text', error: 'no config parser for this file type' });
    if (summary.parsed) throw new Error('expected lines');
    expect(summary.lines.map((line) => line.v)).toEqual([
      'host: db',
      'credentials:',
      undefined,
      'port: 5432',
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });
});

/** Each line refers nine times to the one before: a billion laughs, in YAML. */
const ALIAS_BOMB = [
  'a: &a [x, x, x, x, x, x, x, x, x]',
  'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
  'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
  'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
  'e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
  'f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]',
].join('\n');

describe('bounds', () => {
  it('keeps the smallest keys past maxKeys, counts the rest, and compares only what both sides kept', () => {
    const from = JSON.stringify({ d: 4, c: 3, b: 2, a: 1, e: 5 });
    const to = JSON.stringify({ e: 50, a: 1, ab: 12, b: 2, c: 3, d: 4 });
    const result = compare('big.json', from, to, { maxKeys: 3 });
    expect(result.from).toEqual({ parsed: true, format: 'json', keys: expect.any(Object), truncated: 2 });
    expect(Object.keys(keysOf(result.from))).toEqual(['a', 'b', 'c']);
    expect(Object.keys(keysOf(result.to))).toEqual(['a', 'ab', 'b']);
    expect(result.differences).toEqual([
      { subject: 'big.json:ab', change: 'added', detail: '(absent) → 12', aspect: 'key' },
      {
        subject: 'big.json',
        change: 'changed',
        detail: 'compared up to key b only: the summaries left out 2 keys of from and 3 of to (key limit)',
        severity: 'info',
        aspect: 'truncated',
      },
    ]);
  });

  it('cuts long values at maxValueChars with …, while the hash still covers the whole value', () => {
    const result = compare('a.yaml', `banner: ${'x'.repeat(300)}a\n`, `banner: ${'x'.repeat(300)}b\n`, {
      maxValueChars: 20,
    });
    const shown = keysOf(result.from).banner?.v;
    expect(shown).toBe(`"${'x'.repeat(18)}…`);
    expect(shown).toHaveLength(20);
    expect(result.differences).toEqual([
      { subject: 'a.yaml:banner', change: 'changed', detail: `${shown} → ${shown}`, aspect: 'key' },
    ]);
  });

  it('keeps at most maxLines lines of a file that does not parse and counts the rest', () => {
    const summary = summarize('line\n'.repeat(100), undefined, { maxLines: 10 });
    expect(summary).toMatchObject({ parsed: false, truncated: 90 });
    expect(summary.parsed ? [] : summary.lines).toHaveLength(10);
  });

  it('summarizes a 50 MB file by its first lines without holding much more than the text', () => {
    const text = 'service:\n  host: a\n  port: 80\n'.repeat(1_700_000);
    expect(text.length).toBeGreaterThan(50_000_000);
    text.indexOf('\u0000'); // flattens the repeated string now, so its copy is not counted below
    const heapBefore = process.memoryUsage().heapUsed;
    const summary = summarize(text, 'yaml');
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(100_000_000);
    expect(summary).toMatchObject({ parsed: false, format: 'yaml', truncated: 3 * 1_700_000 - 5_000 });
    expect(summary.parsed ? '' : summary.error).toMatch(/^too large to parse: \d+ characters/);
    expect(JSON.stringify(summary).length).toBeLessThan(400_000);
  });

  it('records a subtree deeper than 64 levels as one hidden value, compared by its hash', () => {
    const nest = (leaf: unknown) => JSON.stringify(Array.from({ length: 80 }).reduce((inner) => ({ n: inner }), leaf));
    const result = compare('deep.json', nest({ note: 'a-PLANTED' }), nest({ note: 'b-PLANTED' }));
    const deepKey = Array.from({ length: 64 }, () => 'n').join('.');
    expect(Object.keys(keysOf(result.from))).toEqual([deepKey]);
    expectNowhere('PLANTED', result.from, result.differences);
    expect(result.differences).toEqual([
      { subject: `deep.json:${deepKey}`, change: 'changed', detail: '«redacted» changed', aspect: 'key' },
    ]);
  });

  it.each([
    ['json nested 100,000 deep', 'json', '['.repeat(100_000) + ']'.repeat(100_000)],
    ['yaml nested 100,000 deep', 'yaml', '['.repeat(100_000) + ']'.repeat(100_000)],
    ['a self-referencing yaml alias', 'yaml', 'a: &a [*a]\n'],
    ['a yaml alias bomb', 'yaml', ALIAS_BOMB],
    ['binary noise as toml', 'toml', '\u0000\u0001\uffff[[[=\n'],
    ['an empty file', 'ini', ''],
  ] as const)('never throws, whatever the input: %s', (_name, format, text) => {
    const summary = summarize(text, format);
    expect(summary.format).toBe(format);
    expect(() => compareConfigs('x', summary, summary)).not.toThrow();
  });
});
