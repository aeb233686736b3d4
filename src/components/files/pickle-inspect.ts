// Reads a Python pickle without unpickling it: the opcode stream is walked on a small model of
// the pickle machine's stack that holds shapes, never objects. It yields the protocol, every
// global the stream names (by GLOBAL/INST, and by STACK_GLOBAL from strings, memoized or not),
// the shape of the top-level value (dict keys, list and tuple lengths) and problems, each at its
// opcode's byte offset. Bounded: a stream longer than the limits, truncated or malformed ends
// the walk with a problem; it never hangs and never holds more than the limits allow.
// The opcode table is Python's (Lib/pickletools.py), protocols 0 to 5.

export interface PickleGlobal {
  module: string;
  name: string;
  /** Byte offset of the opcode that names it. */
  offset: number;
  opcode: 'GLOBAL' | 'INST' | 'STACK_GLOBAL';
}

export type PickleShape =
  | { type: 'dict'; keys: string[]; size: number }
  | { type: 'list' | 'tuple' | 'set'; length: number }
  | { type: 'str' | 'bytes'; length: number }
  | { type: 'object'; global?: string }
  | { type: 'scalar' | 'unknown' };

export interface PickleSummary {
  protocol: number;
  bytes: number;
  opcodes: number;
  globals: PickleGlobal[];
  /** The value the stream builds, as a shape; undefined when the walk did not reach STOP. */
  top?: PickleShape;
  /** Why the walk stopped early or what it could not follow, with the offset. */
  problems: { offset: number; message: string }[];
}

export interface InspectLimits {
  /** Opcodes walked at most (default 10 million). */
  maxOpcodes?: number;
  /** Stack and memo entries kept at most (default 1 million each). */
  maxEntries?: number;
  /** Dict keys kept per dict, for the summary (default 1,000). */
  maxKeys?: number;
}

/** Globals whose call can run code or touch the system: what a pickle must never name. */
const DANGEROUS = [
  /^(os|posix|nt|subprocess|pty|shutil|socket|importlib|runpy|sys|ctypes|multiprocessing|code|codeop|webbrowser|pickle|_pickle|marshal)(\.|$)/,
  /^(builtins|__builtin__)\.(eval|exec|compile|__import__|getattr|setattr|delattr|open|input|breakpoint|globals|locals|vars)$/,
];

export function isDangerousGlobal(global: { module: string; name: string }): boolean {
  const full = `${global.module}.${global.name}`;
  return DANGEROUS.some((pattern) => pattern.test(full));
}

type Item = { kind: 'mark' } | { kind: 'str'; value: string } | { kind: 'shape'; shape: PickleShape };

const MARK: Item = { kind: 'mark' };
const item = (shape: PickleShape): Item => ({ kind: 'shape', shape });
const OTHER = item({ type: 'unknown' });
const SCALAR = item({ type: 'scalar' });

class Stop extends Error {}

export function inspectPickle(data: Uint8Array, limits: InspectLimits = {}): PickleSummary {
  const maxOpcodes = limits.maxOpcodes ?? 10_000_000;
  const maxEntries = limits.maxEntries ?? 1_000_000;
  const maxKeys = limits.maxKeys ?? 1_000;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const summary: PickleSummary = { protocol: 0, bytes: data.length, opcodes: 0, globals: [], problems: [] };
  const stack: Item[] = [];
  const memo = new Map<number, Item>();
  let pos = 0;
  let at = 0;

  const fail = (message: string): never => {
    summary.problems.push({ offset: at, message });
    throw new Stop();
  };
  const need = (n: number) => {
    if (pos + n > data.length) fail(`truncated: the opcode needs ${n} more bytes`);
  };
  const u8 = () => (need(1), data[pos++]!);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    const n = view.getBigUint64(pos, true);
    pos += 8;
    if (n > BigInt(data.length - pos)) fail(`truncated: a length of ${n} bytes runs past the end of the stream`);
    return Number(n);
  };
  const bytes = (n: number) => {
    need(n);
    pos += n;
    return data.subarray(pos - n, pos);
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('truncated: a text argument has no end of line');
    const text = Buffer.from(data.subarray(pos, end)).toString('latin1');
    pos = end + 1;
    return text;
  };
  const push = (entry: Item) => {
    if (stack.length >= maxEntries) fail(`more than ${maxEntries} stack entries`);
    stack.push(entry);
  };
  const pop = (): Item => stack.pop() ?? fail('the stack is empty where the opcode needs a value');
  const popMark = (): Item[] => {
    const mark = stack.lastIndexOf(MARK);
    if (mark < 0) fail('no MARK to pop to');
    return stack.splice(mark).slice(1);
  };
  const top = (): Item => stack.at(-1) ?? fail('the stack is empty where the opcode needs a value');
  const text = (raw: Uint8Array) => new TextDecoder('utf-8', { fatal: false }).decode(raw);
  const named = (module: string, name: string, opcode: PickleGlobal['opcode']) => {
    summary.globals.push({ module, name, offset: at, opcode });
    return item({ type: 'object', global: `${module}.${name}` });
  };
  /** The container an APPEND/SETITEM-like opcode adds to, with `count` more entries. */
  const grow = (target: Item, count: number, keys: Item[] = []) => {
    if (target.kind !== 'shape') return;
    const shape = target.shape;
    if (shape.type === 'list' || shape.type === 'set') shape.length += count;
    else if (shape.type === 'dict') {
      shape.size += count;
      for (const k of keys) if (k.kind === 'str' && shape.keys.length < maxKeys) shape.keys.push(k.value);
    }
  };

  try {
    while (pos < data.length) {
      at = pos;
      if (++summary.opcodes > maxOpcodes) fail(`more than ${maxOpcodes} opcodes`);
      const op = data[pos++]!;
      switch (op) {
        case 0x80: // PROTO
          summary.protocol = u8();
          break;
        case 0x95: // FRAME
          u64();
          break;
        case 0x2e: // STOP
          summary.top = shapeOf(pop());
          return summary;
        case 0x28: // MARK
          push(MARK);
          break;
        case 0x30: // POP
          pop();
          break;
        case 0x31: // POP_MARK
          popMark();
          break;
        case 0x32: // DUP
          push(top());
          break;
        case 0x4e: // NONE
        case 0x88: // NEWTRUE
        case 0x89: // NEWFALSE
          push(SCALAR);
          break;
        case 0x49: // INT
        case 0x4c: // LONG
        case 0x46: // FLOAT
          line();
          push(SCALAR);
          break;
        case 0x4a: // BININT
          u32();
          push(SCALAR);
          break;
        case 0x4b: // BININT1
          u8();
          push(SCALAR);
          break;
        case 0x4d: // BININT2
          u16();
          push(SCALAR);
          break;
        case 0x8a: // LONG1
          bytes(u8());
          push(SCALAR);
          break;
        case 0x8b: // LONG4
          bytes(u32());
          push(SCALAR);
          break;
        case 0x47: // BINFLOAT
          bytes(8);
          push(SCALAR);
          break;
        case 0x53: // STRING
          push({ kind: 'str', value: unquote(line()) });
          break;
        case 0x56: // UNICODE
          push({ kind: 'str', value: line() });
          break;
        case 0x54: // BINSTRING
          push({ kind: 'str', value: Buffer.from(bytes(u32())).toString('latin1') });
          break;
        case 0x55: // SHORT_BINSTRING
          push({ kind: 'str', value: Buffer.from(bytes(u8())).toString('latin1') });
          break;
        case 0x58: // BINUNICODE
          push({ kind: 'str', value: text(bytes(u32())) });
          break;
        case 0x8c: // SHORT_BINUNICODE
          push({ kind: 'str', value: text(bytes(u8())) });
          break;
        case 0x8d: // BINUNICODE8
          push({ kind: 'str', value: text(bytes(u64())) });
          break;
        case 0x42: // BINBYTES
          push(item({ type: 'bytes', length: bytes(u32()).length }));
          break;
        case 0x43: // SHORT_BINBYTES
          push(item({ type: 'bytes', length: bytes(u8()).length }));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          push(item({ type: 'bytes', length: bytes(u64()).length }));
          break;
        case 0x97: // NEXT_BUFFER
          push(OTHER);
          break;
        case 0x98: // READONLY_BUFFER
          break;
        case 0x5d: // EMPTY_LIST
          push(item({ type: 'list', length: 0 }));
          break;
        case 0x29: // EMPTY_TUPLE
          push(item({ type: 'tuple', length: 0 }));
          break;
        case 0x7d: // EMPTY_DICT
          push(item({ type: 'dict', keys: [], size: 0 }));
          break;
        case 0x8f: // EMPTY_SET
          push(item({ type: 'set', length: 0 }));
          break;
        case 0x61: {
          // APPEND
          pop();
          grow(top(), 1);
          break;
        }
        case 0x65: // APPENDS
        case 0x90: {
          // ADDITEMS
          const items = popMark();
          grow(top(), items.length);
          break;
        }
        case 0x6c: // LIST
          push(item({ type: 'list', length: popMark().length }));
          break;
        case 0x74: // TUPLE
          push(item({ type: 'tuple', length: popMark().length }));
          break;
        case 0x91: // FROZENSET
          push(item({ type: 'set', length: popMark().length }));
          break;
        case 0x85: // TUPLE1
        case 0x86: // TUPLE2
        case 0x87: {
          // TUPLE3
          const n = op - 0x84;
          for (let i = 0; i < n; i++) pop();
          push(item({ type: 'tuple', length: n }));
          break;
        }
        case 0x64: {
          // DICT
          const entries = popMark();
          const dict = item({ type: 'dict', keys: [], size: 0 });
          grow(
            dict,
            Math.floor(entries.length / 2),
            entries.filter((_, i) => i % 2 === 0),
          );
          push(dict);
          break;
        }
        case 0x73: {
          // SETITEM
          pop();
          const key = pop();
          grow(top(), 1, [key]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const entries = popMark();
          grow(
            top(),
            Math.floor(entries.length / 2),
            entries.filter((_, i) => i % 2 === 0),
          );
          break;
        }
        case 0x63: {
          // GLOBAL
          const module = line();
          push(named(module, line(), 'GLOBAL'));
          break;
        }
        case 0x69: {
          // INST: module and name as text, arguments down to the MARK
          const module = line();
          const global = named(module, line(), 'INST');
          popMark();
          push(global);
          break;
        }
        case 0x93: {
          // STACK_GLOBAL: module and name from the stack, which may have come from the memo
          const name = pop();
          const module = pop();
          if (module.kind === 'str' && name.kind === 'str') push(named(module.value, name.value, 'STACK_GLOBAL'));
          else {
            summary.problems.push({ offset: at, message: 'STACK_GLOBAL with a name that is not a plain string' });
            push(item({ type: 'object' }));
          }
          break;
        }
        case 0x82: // EXT1
        case 0x83: // EXT2
        case 0x84: // EXT4
          if (op === 0x82) u8();
          else if (op === 0x83) u16();
          else u32();
          summary.problems.push({ offset: at, message: 'an extension-registry global, which cannot be named here' });
          push(item({ type: 'object' }));
          break;
        case 0x52: {
          // REDUCE: callable(args)
          pop();
          const callable = pop();
          push(item({ type: 'object', ...globalOf(callable) }));
          break;
        }
        case 0x62: // BUILD
          pop();
          break;
        case 0x6f: {
          // OBJ: class and arguments down to the MARK
          const args = popMark();
          push(item({ type: 'object', ...globalOf(args[0]) }));
          break;
        }
        case 0x81: {
          // NEWOBJ
          pop();
          push(item({ type: 'object', ...globalOf(pop()) }));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX
          pop();
          pop();
          push(item({ type: 'object', ...globalOf(pop()) }));
          break;
        }
        case 0x50: // PERSID
          line();
          push(OTHER);
          break;
        case 0x51: // BINPERSID
          pop();
          push(OTHER);
          break;
        case 0x70: // PUT
          remember(Number(line()));
          break;
        case 0x71: // BINPUT
          remember(u8());
          break;
        case 0x72: // LONG_BINPUT
          remember(u32());
          break;
        case 0x94: // MEMOIZE
          remember(memo.size);
          break;
        case 0x67: // GET
          push(recall(Number(line())));
          break;
        case 0x68: // BINGET
          push(recall(u8()));
          break;
        case 0x6a: // LONG_BINGET
          push(recall(u32()));
          break;
        default:
          fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
    fail('the stream ends without STOP');
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
  }
  return summary;

  function remember(index: number): void {
    if (!Number.isInteger(index) || index < 0) fail('a memo index that is not a number');
    if (memo.size >= maxEntries && !memo.has(index)) fail(`more than ${maxEntries} memo entries`);
    memo.set(index, top());
  }

  function recall(index: number): Item {
    return memo.get(index) ?? fail(`memo entry ${index} is read before it is written`);
  }
}

function globalOf(callable: Item | undefined): { global?: string } {
  return callable?.kind === 'shape' && callable.shape.type === 'object' && callable.shape.global
    ? { global: callable.shape.global }
    : {};
}

function shapeOf(entry: Item): PickleShape {
  if (entry.kind === 'str') return { type: 'str', length: entry.value.length };
  if (entry.kind === 'shape') return entry.shape;
  return { type: 'unknown' };
}

/** A protocol-0 STRING argument: a Python literal in quotes. */
function unquote(literal: string): string {
  const quoted = /^(['"])(.*)\1$/s.exec(literal);
  return quoted ? quoted[2]! : literal;
}
