// Reading pickles without unpickling them: the globals a stream names (however it builds the
// name), the shape of what it holds, and a bounded walk of a hostile or broken stream. The
// streams below were written by Python 3.11's own pickle module (never loaded by it either):
//   model = {'model': 'classifier', 'version': 1, 'weights': [0.1, 0.2, 0.3]}
//   pickle.dumps(model, protocol=p).hex()
//   class Evil:  __reduce__ = lambda self: (os.system, ('echo owned',))
//   pickle.dumps({'model': 'x', 'payload': Evil()}, protocol=p).hex()
import { inspectPickle, isDangerousGlobal } from '../src/components/files/pickle-inspect';

const hex = (h: string) => Buffer.from(h, 'hex');
const MODEL: Record<number, string> = {
  0: '286470300a566d6f64656c0a70310a56636c61737369666965720a70320a735676657273696f6e0a70330a49310a7356776569676874730a70340a286c70350a46302e310a6146302e320a6146302e330a61732e',
  2: '80027d71002858050000006d6f64656c7101580a000000636c61737369666965727102580700000076657273696f6e71034b0158070000007765696768747371045d710528473fb999999999999a473fc999999999999a473fd333333333333365752e',
  4: '8004954f000000000000007d94288c056d6f64656c948c0a636c6173736966696572948c0776657273696f6e944b018c0777656967687473945d9428473fb999999999999a473fc999999999999a473fd333333333333365752e',
};
const EVIL: Record<number, string> = {
  0: '286470300a566d6f64656c0a70310a56780a70320a73567061796c6f61640a70330a63706f7369780a73797374656d0a70340a28566563686f206f776e65640a70350a7470360a5270370a732e',
  4: '8004953f000000000000007d94288c056d6f64656c948c0178948c077061796c6f6164948c05706f736978948c0673797374656d9493948c0a6563686f206f776e65649485945294752e',
};
const ORDERED_DICT =
  '80049529000000000000008c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c0161944b01732e';

describe('reading a pickle without unpickling it', () => {
  it.each([0, 2, 4])('sees a model dict written with protocol %i: its keys, and no global', (protocol) => {
    const summary = inspectPickle(hex(MODEL[protocol]!));
    expect(summary).toMatchObject({ protocol, globals: [], problems: [] });
    expect(summary.top).toEqual({ type: 'dict', keys: ['model', 'version', 'weights'], size: 3 });
  });

  it.each([0, 4])('names os.system (posix.system) in a malicious pickle of protocol %i, at its opcode', (protocol) => {
    const data = hex(EVIL[protocol]!);
    const summary = inspectPickle(data);
    expect(summary.globals).toEqual([
      expect.objectContaining({ module: 'posix', name: 'system', opcode: protocol === 0 ? 'GLOBAL' : 'STACK_GLOBAL' }),
    ]);
    const global = summary.globals[0]!;
    expect(data[global.offset]).toBe(protocol === 0 ? 0x63 : 0x93);
    expect(isDangerousGlobal(global)).toBe(true);
    expect(summary.top).toMatchObject({ type: 'dict', keys: ['model', 'payload'] });
  });

  it('resolves a STACK_GLOBAL whose module and name are read back from the memo', () => {
    // PROTO 4; 'os' MEMOIZE POP; 'system' MEMOIZE POP; BINGET 0; BINGET 1; STACK_GLOBAL;
    // 'id' TUPLE1 REDUCE STOP
    const data = Buffer.concat([
      hex('8004'),
      hex('8c02'),
      Buffer.from('os'),
      hex('9430'),
      hex('8c06'),
      Buffer.from('system'),
      hex('9430'),
      hex('68006801'),
      hex('93'),
      hex('8c02'),
      Buffer.from('id'),
      hex('85522e'),
    ]);
    const summary = inspectPickle(data);
    expect(summary.globals).toEqual([{ module: 'os', name: 'system', offset: 22, opcode: 'STACK_GLOBAL' }]);
    expect(data[22]).toBe(0x93);
    expect(summary.top).toEqual({ type: 'object', global: 'os.system' });
    expect(summary.problems).toEqual([]);
  });

  it('does not call an ordinary library global dangerous', () => {
    const summary = inspectPickle(hex(ORDERED_DICT));
    expect(summary.globals.map((g) => `${g.module}.${g.name}`)).toEqual(['collections.OrderedDict']);
    expect(isDangerousGlobal(summary.globals[0]!)).toBe(false);
    for (const name of [
      'builtins.eval',
      'builtins.exec',
      'builtins.getattr',
      'subprocess.Popen',
      'importlib.import_module',
    ])
      expect(isDangerousGlobal({ module: name.split('.')[0]!, name: name.split('.')[1]! })).toBe(true);
  });

  it.each([
    ['a truncated stream', hex(MODEL[4]!).subarray(0, 40), /^truncated/],
    ['a stream without STOP', hex(MODEL[2]!).subarray(0, -1), /^the stream ends without STOP$/],
    ['an unknown opcode', Buffer.concat([hex('8004'), hex('ff')]), /^unknown opcode 0xff$/],
    [
      'a length beyond the stream',
      Buffer.concat([hex('8004'), hex('8dffffffffffffff7f')]),
      /^truncated: a length of \d+ bytes runs past the end of the stream$/,
    ],
    ['a memo read before it is written', Buffer.concat([hex('8004'), hex('68052e')]), /^memo entry 5 is read before/],
  ])('ends the walk of %s with a problem, never a crash', (_what, data, message) => {
    const summary = inspectPickle(data);
    expect(summary.top).toBeUndefined();
    expect(summary.problems).toHaveLength(1);
    expect(summary.problems[0]!.message).toMatch(message);
  });

  it('stops a stream built to exhaust memory at its limits, quickly', () => {
    const marks = Buffer.alloc(2_000_000, 0x28); // two million MARKs
    const started = Date.now();
    const summary = inspectPickle(marks, { maxEntries: 10_000 });
    expect(summary.problems).toEqual([{ offset: 10_000, message: 'more than 10000 stack entries' }]);
    expect(Date.now() - started).toBeLessThan(5_000);
    const looping = inspectPickle(Buffer.alloc(100_000, 0x4e), { maxOpcodes: 1_000 }); // NONE, NONE, …
    expect(looping.problems).toEqual([{ offset: 1_000, message: 'more than 1000 opcodes' }]);
  });
});
