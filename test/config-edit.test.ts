// Setting allowed config keys back to an environment's own values after a sync: each format
// keeps the rest of the file, and a file that cannot be edited key by key is left to the caller.
import { keepConfigKeys, parseKeyPath } from '../src/components/files/config-edit';

describe('keeping config keys', () => {
  test('parses the dotted keys config-diff reports', () => {
    expect(parseKeyPath('database.pool.max')).toEqual({ path: ['database', 'pool', 'max'] });
    expect(parseKeyPath('servers[0].host')).toEqual({ path: ['servers', 0, 'host'] });
    expect(parseKeyPath('labels["app.kubernetes.io/name"]')).toEqual({ path: ['labels', 'app.kubernetes.io/name'] });
    expect(parseKeyPath('#2.a.b')).toEqual({ document: 2, path: ['a', 'b'] });
  });

  test('YAML: the value is spliced in, every other byte stays', () => {
    const target = '# settings\ndb:\n  host: prod   # per env\n  max: 10\nlist: [ a, b ]\n';
    const own = 'db:\n  host: "regr-db"\n  max: 50\n';
    expect(keepConfigKeys(target, own, 'yaml', ['db.host'])).toBe(
      '# settings\ndb:\n  host: "regr-db"   # per env\n  max: 10\nlist: [ a, b ]\n',
    );
    // A key the own file lacks is removed.
    expect(keepConfigKeys('a: 1\nb: 2\n', 'a: 1\n', 'yaml', ['b'])).toBe('a: 1\n');
  });

  test('JSON keeps its indentation; TOML, INI, .env and .properties their other keys', () => {
    expect(
      keepConfigKeys('{\n    "a": {"host": "p"},\n    "b": 1\n}\n', '{"a": {"host": "r"}}', 'json', ['a.host']),
    ).toBe('{\n    "a": {\n        "host": "r"\n    },\n    "b": 1\n}\n');
    expect(keepConfigKeys('[db]\nhost = "p"\nport = 1\n', '[db]\nhost = "r"\n', 'toml', ['db.host'])).toMatch(
      /host = "r"\nport = 1/,
    );
    expect(keepConfigKeys('[db]\nhost = p\nport = 1\n', '[db]\nhost = r\n', 'ini', ['db.host'])).toMatch(
      /host=r\nport=1/,
    );
    expect(keepConfigKeys('# env\nHOST=p\nPORT=1\n', 'HOST=r\nEXTRA=1\n', 'dotenv', ['HOST'])).toBe(
      '# env\nHOST=r\nPORT=1\n',
    );
    expect(keepConfigKeys('db.host=p\ndb.port=1\n', 'db.host = r\n', 'properties', ['db.host'])).toBe(
      'db.host = r\ndb.port=1\n',
    );
  });

  test('a file that does not parse is not edited', () => {
    expect(keepConfigKeys('a: [\n', 'a: 1\n', 'yaml', ['a'])).toBeUndefined();
    expect(keepConfigKeys('{', '{}', 'json', ['a'])).toBeUndefined();
    expect(keepConfigKeys('x', 'y', undefined, ['a'])).toBeUndefined();
  });
});
