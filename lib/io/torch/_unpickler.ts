/**
 * The restricted unpickler: reads the pickle of a `torch.save` file without
 * running anything. It knows only the opcodes torch writes for state dicts
 * and training checkpoints, and only an allow-list of globals
 * (`collections.OrderedDict`, the tensor and parameter rebuild functions,
 * the typed storage classes, `argparse.Namespace` and `_codecs.encode` for
 * bytes); anything else is refused with a `CheckpointError` naming what was
 * asked for. What its builders may copy is budgeted by the pickle's length.
 * Private to the torch reader.
 *
 * @module
 */

import type { RawDType } from "../raw_tensor.ts";
import { CheckpointError } from "../checkpoint_error.ts";
import {
  type PickleKey,
  type PickleRecord,
  type PickleValue,
  TorchTensor,
} from "./pickle_value.ts";
import { pickleStates } from "./_pickle_states.ts";
import { OPCODE_NAMES } from "./_opcodes.ts";
import { forEachReachable } from "./_walk.ts";

class Global {
  constructor(readonly module: string, readonly name: string) {}
  get full(): string {
    return `${this.module}.${this.name}`;
  }
}

class StorageRef {
  constructor(
    readonly dtype: RawDType,
    readonly key: string,
    readonly numel: number,
  ) {}
}

const STORAGE_DTYPES: Record<string, RawDType> = {
  FloatStorage: "float32",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  DoubleStorage: "float64",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
};

const ALLOWED_GLOBALS = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
  "argparse.Namespace",
  "_codecs.encode",
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

const utf8Decoder = new TextDecoder("utf-8");

/** How messages name a value the unpickler made (`a dict with 3 entries`). */
export function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof TorchTensor) {
    return `a ${v.dtype} tensor of shape [${v.shape.join(", ")}]`;
  }
  if (v instanceof Map) return `a dict with ${v.size} entries`;
  if (Array.isArray(v)) return `a list/tuple of ${v.length}`;
  if (v instanceof Uint8Array) return `bytes (${v.length})`;
  if (v instanceof Global) return `the global ${v.full}`;
  if (v instanceof StorageRef) return `a ${v.dtype} storage`;
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  if (typeof v === "object") return "an object (Namespace)";
  return `the ${typeof v} ${String(v)}`;
}

function setProp(obj: PickleRecord, key: string, value: PickleValue): void {
  Object.defineProperty(obj, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** Reads one pickle (`load()`), collecting the tensors it makes in `tensors`. */
export class Unpickler {
  #b: Uint8Array;
  #v: DataView;
  #pos = 0;
  #stack: unknown[] = [];
  #marks: number[] = [];
  #memo = new Map<number, unknown>();
  #storages = new Map<string, StorageRef>();
  /**
   * What the builders (REDUCE, BUILD) may still copy, in items: a memoized
   * argument used again costs 5 bytes of pickle per call, so without a
   * budget a small pickle could copy one large value millions of times.
   * A pickle torch writes copies less than its own length.
   */
  #budget: number;
  readonly tensors: TorchTensor[] = [];

  constructor(bytes: Uint8Array, readonly label: string) {
    this.#b = bytes;
    this.#v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#budget = 4 * bytes.length + 4096;
  }

  /** Charges `items` copied by a builder to the budget; refuses past it. */
  #spend(items: number, what: string): void {
    this.#budget -= items;
    if (this.#budget < 0) {
      this.#damaged(
        `${what} makes the pickle build more than ${
          4 * this.#b.length + 4096
        } items from its ${this.#b.length} bytes (the same large value used again and again?); torch.save never writes that`,
      );
    }
  }

  #refuse(what: string): never {
    throw new CheckpointError(`refusing to load ${this.label}: ${what}`);
  }

  #damaged(what: string): never {
    throw new CheckpointError(
      `cannot read ${this.label}: ${what} in data.pkl at byte ${this.#pos}; the pickle is damaged or not one torch.save wrote, fetch the checkpoint again or re-save it with torch.save(obj, path)`,
    );
  }

  #need(n: number, what?: string): number {
    const at = this.#pos;
    if (n < 0 || at + n > this.#b.length) {
      this.#damaged(
        `${what ? what + ": " : ""}expected ${n} more bytes, found ${
          this.#b.length - at
        } (truncated)`,
      );
    }
    this.#pos = at + n;
    return at;
  }

  #u8(): number {
    return this.#b[this.#need(1)];
  }
  #u16(): number {
    return this.#v.getUint16(this.#need(2), true);
  }
  #u32(): number {
    return this.#v.getUint32(this.#need(4), true);
  }
  #u64(): number {
    const x = this.#v.getBigUint64(this.#need(8), true);
    if (x > BigInt(this.#b.length)) {
      this.#damaged(`a length of ${x} bytes, beyond the pickle's size`);
    }
    return Number(x);
  }

  /** `n` bytes of the pickle (a view), refused when fewer are left. */
  #bytes(n: number, what: string): Uint8Array {
    const at = this.#need(n, what);
    return this.#b.subarray(at, at + n);
  }

  #line(): string {
    const at = this.#pos;
    const end = this.#b.indexOf(0x0a, at);
    if (end < 0) this.#damaged("expected a newline-terminated name");
    this.#pos = end + 1;
    return utf8Decoder.decode(this.#b.subarray(at, end));
  }

  #pop(): unknown {
    if (this.#stack.length === 0 || this.#stack.length <= this.#topMark()) {
      this.#damaged("expected a value on the stack, found none");
    }
    return this.#stack.pop();
  }

  #top(): unknown {
    if (this.#stack.length === 0) {
      this.#damaged("expected a value on the stack, found none");
    }
    return this.#stack[this.#stack.length - 1];
  }

  #topMark(): number {
    return this.#marks.length ? this.#marks[this.#marks.length - 1] : 0;
  }

  #popMark(): unknown[] {
    const m = this.#marks.pop();
    if (m === undefined) this.#damaged("expected a MARK, found none");
    return this.#stack.splice(m);
  }

  #long(bytes: Uint8Array): number | bigint {
    if (bytes.length === 0) return 0;
    // Through hex digits: linear in the length, where shifting a BigInt
    // byte by byte would be quadratic on a long LONG4.
    let hex = "";
    for (let i = bytes.length - 1; i >= 0; i--) {
      hex += bytes[i].toString(16).padStart(2, "0");
    }
    let x = BigInt("0x" + hex);
    if (bytes[bytes.length - 1] & 0x80) x -= 1n << BigInt(8 * bytes.length);
    return x >= -BigInt(Number.MAX_SAFE_INTEGER) &&
        x <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(x)
      : x;
  }

  #global(module: string, name: string): Global {
    const g = new Global(module, name);
    if (!ALLOWED_GLOBALS.has(g.full)) {
      const hint = module === "numpy" || module.startsWith("numpy.")
        ? "It holds NumPy values (e.g. a metric saved as np.float64): load it in Python, turn them into Python numbers (float(x), x.tolist()) or drop them, and re-save with torch.save(obj, path); or save only the weights: torch.save(model.state_dict(), path)"
        : "If the file holds a whole pickled model or other Python objects, load it in Python and re-save only the weights: torch.save(model.state_dict(), path)";
      this.#refuse(
        `the pickle asks for global "${g.full}", which is not a tensor, storage or dict; tokenlab only reads state dicts and never runs code from a checkpoint. ${hint}`,
      );
    }
    return g;
  }

  #memoPut(index: number): void {
    this.#memo.set(index, this.#top());
  }

  #key(k: unknown): PickleKey {
    if (
      k === null || typeof k === "string" || typeof k === "number" ||
      typeof k === "bigint" || typeof k === "boolean"
    ) return k;
    this.#refuse(
      `a dict has a key that is ${
        describe(k)
      }; tokenlab reads dicts keyed by strings or numbers only (as state dicts and training checkpoints are)`,
    );
  }

  #setItems(dict: unknown, items: unknown[]): void {
    if (!(dict instanceof Map)) {
      this.#damaged(`expected a dict to set items on, found ${describe(dict)}`);
    }
    for (let i = 0; i + 1 < items.length; i += 2) {
      dict.set(this.#key(items[i]), items[i + 1]);
    }
  }

  #appendTo(list: unknown, items: unknown[]): void {
    if (!Array.isArray(list)) {
      this.#damaged(`expected a list to append to, found ${describe(list)}`);
    }
    for (const x of items) list.push(x);
  }

  #reduce(fn: unknown, args: unknown): unknown {
    if (!(fn instanceof Global)) {
      this.#damaged(
        `expected a callable global for REDUCE, found ${describe(fn)}`,
      );
    }
    if (!Array.isArray(args)) {
      this.#damaged(
        `expected an argument tuple for ${fn.full}, found ${describe(args)}`,
      );
    }
    switch (fn.full) {
      case "collections.OrderedDict": {
        const m = new Map<PickleKey, unknown>();
        if (args.length > 0 && Array.isArray(args[0])) {
          this.#spend(args[0].length, "collections.OrderedDict(items)");
          for (const pair of args[0]) {
            if (Array.isArray(pair) && pair.length === 2) {
              m.set(this.#key(pair[0]), pair[1]);
            }
          }
        }
        return m;
      }
      case "torch._utils._rebuild_tensor_v2":
        return this.#rebuildTensor(args);
      case "torch._utils._rebuild_parameter":
      case "torch._utils._rebuild_parameter_with_state": {
        const data = args[0];
        if (!(data instanceof TorchTensor)) {
          this.#damaged(
            `expected a tensor as the first argument of ${fn.full}, found ${
              describe(data)
            }`,
          );
        }
        data.isParameter = true;
        data.requiresGrad = args[1] === true;
        return data;
      }
      case "_codecs.encode": {
        const [s, enc] = args;
        if (
          typeof s !== "string" ||
          (enc !== "latin1" && enc !== "latin-1" && enc !== "iso-8859-1")
        ) {
          this.#refuse(
            `the pickle calls _codecs.encode with ${describe(s)} and ${
              describe(enc)
            }; tokenlab only decodes the (str, "latin1") form pickle protocol 2 uses for bytes`,
          );
        }
        this.#spend(s.length, "_codecs.encode");
        const out = new Uint8Array(s.length);
        for (let i = 0; i < s.length; i++) {
          const c = s.charCodeAt(i);
          if (c > 255) {
            this.#damaged("a latin1 bytes string holds a character above 255");
          }
          out[i] = c;
        }
        return out;
      }
      case "argparse.Namespace":
        if (args.length === 0) return {};
        break;
    }
    this.#refuse(
      `the pickle calls ${fn.full} with ${
        describe(args)
      }, which tokenlab does not build; tokenlab only reads state dicts and never runs code from a checkpoint`,
    );
  }

  #rebuildTensor(args: unknown[]): TorchTensor {
    const [storage, offset, size, stride, requiresGrad] = args;
    const intList = (x: unknown): x is number[] =>
      Array.isArray(x) &&
      x.every((d) =>
        typeof d === "number" && Number.isSafeInteger(d) && d >= 0
      );
    if (
      !(storage instanceof StorageRef) || typeof offset !== "number" ||
      !Number.isSafeInteger(offset) || offset < 0 || !intList(size) ||
      !intList(stride) || size.length !== stride.length
    ) {
      this.#damaged(
        `expected _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks), found arguments (${
          args.map(describe).join(", ")
        })`,
      );
    }
    this.#spend(8 + 2 * size.length, "_rebuild_tensor_v2");
    // The element count and the reach of the view are checked once the
    // whole pickle is read (checkTensorViews), where the tensor has a name.
    const t = new TorchTensor(storage.dtype, [...size], {
      key: storage.key,
      storageNumel: storage.numel,
      offset,
      stride: [...stride],
    }, requiresGrad === true);
    this.tensors.push(t);
    return t;
  }

  #persistentLoad(pid: unknown): StorageRef {
    if (
      !Array.isArray(pid) || pid.length < 5 || pid[0] !== "storage" ||
      !(pid[1] instanceof Global) || typeof pid[2] !== "string" ||
      typeof pid[4] !== "number"
    ) {
      this.#refuse(
        `the pickle asks for a persistent object ${
          describe(pid)
        }; tokenlab only resolves torch's ('storage', storage_type, key, location, numel) ids`,
      );
    }
    const [, type, key, , count] = pid as [
      string,
      Global,
      string,
      unknown,
      number,
    ];
    const dtype = type.module === "torch"
      ? STORAGE_DTYPES[type.name]
      : undefined;
    if (!dtype) {
      this.#refuse(
        `a storage of type ${type.full}, which tokenlab does not read; it reads ${
          Object.keys(STORAGE_DTYPES).join(", ")
        }`,
      );
    }
    if (!/^[A-Za-z0-9_.-]+$/.test(key) || key === "." || key === "..") {
      this.#damaged(
        `a storage key ${JSON.stringify(key)} that is not a file name`,
      );
    }
    if (!Number.isSafeInteger(count) || count < 0) {
      this.#damaged(
        `storage "${key}" declares ${count} elements (its numel); expected a non-negative whole number`,
      );
    }
    const known = this.#storages.get(key);
    if (known) {
      if (known.dtype !== dtype) {
        this.#damaged(
          `storage "${key}" used as both ${known.dtype} and ${dtype}`,
        );
      }
      return known;
    }
    const ref = new StorageRef(dtype, key, count);
    this.#storages.set(key, ref);
    return ref;
  }

  load(): PickleValue {
    const b = this.#b;
    while (true) {
      if (this.#pos >= b.length) {
        this.#damaged("expected STOP, found the end of the pickle");
      }
      const at = this.#pos;
      const op = b[this.#pos++];
      switch (op) {
        case 0x80: { // PROTO
          const proto = this.#u8();
          if (proto > 5) {
            this.#refuse(
              `the pickle uses protocol ${proto}; tokenlab reads protocols 2 to 5 (torch.save uses 2)`,
            );
          }
          break;
        }
        case 0x95: { // FRAME
          // A frame's length only groups the opcodes that follow; it must
          // not claim more than the pickle holds.
          const n = this.#v.getBigUint64(this.#need(8), true);
          const left = this.#b.length - this.#pos;
          if (n > BigInt(left)) {
            this.#damaged(
              `a FRAME of ${n} bytes, with only ${left} bytes left in the pickle`,
            );
          }
          break;
        }
        case 0x2e: { // STOP
          const result = this.#pop();
          this.#checkResult(result);
          return result as PickleValue;
        }
        case 0x28: // MARK
          this.#marks.push(this.#stack.length);
          break;
        case 0x30: // POP
          this.#pop();
          break;
        case 0x31: // POP_MARK
          this.#popMark();
          break;
        case 0x32: // DUP
          this.#stack.push(this.#top());
          break;
        case 0x7d: // EMPTY_DICT
          this.#stack.push(new Map());
          break;
        case 0x64: { // DICT
          const items = this.#popMark();
          const m = new Map();
          this.#setItems(m, items);
          this.#stack.push(m);
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.#stack.push([]);
          break;
        case 0x6c: // LIST
          this.#stack.push(this.#popMark());
          break;
        case 0x29: // EMPTY_TUPLE
          this.#stack.push([]);
          break;
        case 0x74: // TUPLE
          this.#stack.push(this.#popMark());
          break;
        case 0x85: // TUPLE1
          this.#stack.push([this.#pop()]);
          break;
        case 0x86: { // TUPLE2
          const y = this.#pop(), x = this.#pop();
          this.#stack.push([x, y]);
          break;
        }
        case 0x87: { // TUPLE3
          const z = this.#pop(), y = this.#pop(), x = this.#pop();
          this.#stack.push([x, y, z]);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.#stack.push([]);
          break;
        case 0x91: // FROZENSET
          this.#stack.push(this.#popMark());
          break;
        case 0x61: { // APPEND
          const x = this.#pop();
          this.#appendTo(this.#top(), [x]);
          break;
        }
        case 0x65: // APPENDS
        case 0x90: { // ADDITEMS
          const items = this.#popMark();
          this.#appendTo(this.#top(), items);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.#pop(), k = this.#pop();
          this.#setItems(this.#top(), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.#popMark();
          this.#setItems(this.#top(), items);
          break;
        }
        case 0x71: // BINPUT
          this.#memoPut(this.#u8());
          break;
        case 0x72: // LONG_BINPUT
          this.#memoPut(this.#u32());
          break;
        case 0x94: // MEMOIZE
          this.#memoPut(this.#memo.size);
          break;
        case 0x68: // BINGET
        case 0x6a: { // LONG_BINGET
          const i = op === 0x68 ? this.#u8() : this.#u32();
          if (!this.#memo.has(i)) {
            this.#damaged(`a memo lookup of ${i}, which was never stored`);
          }
          this.#stack.push(this.#memo.get(i));
          break;
        }
        case 0x4a: // BININT
          this.#stack.push(this.#v.getInt32(this.#need(4), true));
          break;
        case 0x4b: // BININT1
          this.#stack.push(this.#u8());
          break;
        case 0x4d: // BININT2
          this.#stack.push(this.#u16());
          break;
        case 0x8a: // LONG1
          this.#stack.push(this.#long(this.#bytes(this.#u8(), "LONG1")));
          break;
        case 0x8b: { // LONG4
          // #bytes refuses a negative length or one past the pickle's end.
          const n = this.#v.getInt32(this.#need(4), true);
          this.#stack.push(this.#long(this.#bytes(n, "LONG4")));
          break;
        }
        case 0x47: // BINFLOAT
          this.#stack.push(this.#v.getFloat64(this.#need(8), false));
          break;
        case 0x4e: // NONE
          this.#stack.push(null);
          break;
        case 0x88: // NEWTRUE
          this.#stack.push(true);
          break;
        case 0x89: // NEWFALSE
          this.#stack.push(false);
          break;
        case 0x58: // BINUNICODE
          this.#stack.push(
            utf8Decoder.decode(this.#bytes(this.#u32(), "BINUNICODE string")),
          );
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.#stack.push(
            utf8Decoder.decode(
              this.#bytes(this.#u8(), "SHORT_BINUNICODE string"),
            ),
          );
          break;
        case 0x8d: // BINUNICODE8
          this.#stack.push(
            utf8Decoder.decode(this.#bytes(this.#u64(), "BINUNICODE8 string")),
          );
          break;
        case 0x42: // BINBYTES
          this.#stack.push(this.#bytes(this.#u32(), "BINBYTES").slice());
          break;
        case 0x43: // SHORT_BINBYTES
          this.#stack.push(this.#bytes(this.#u8(), "SHORT_BINBYTES").slice());
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.#stack.push(
            this.#bytes(this.#u64(), op === 0x8e ? "BINBYTES8" : "BYTEARRAY8")
              .slice(),
          );
          break;
        case 0x63: { // GLOBAL
          const module = this.#line();
          const name = this.#line();
          this.#stack.push(this.#global(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.#pop(), module = this.#pop();
          if (typeof name !== "string" || typeof module !== "string") {
            this.#damaged("expected module and name strings for STACK_GLOBAL");
          }
          this.#stack.push(this.#global(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.#pop();
          const fn = this.#pop();
          this.#stack.push(this.#reduce(fn, args));
          break;
        }
        case 0x81: // NEWOBJ
        case 0x92: { // NEWOBJ_EX
          if (op === 0x92) this.#pop(); // kwargs
          const args = this.#pop();
          const cls = this.#pop();
          if (!(cls instanceof Global)) {
            this.#damaged(
              `expected a class for NEWOBJ, found ${describe(cls)}`,
            );
          }
          if (cls.full === "argparse.Namespace") this.#stack.push({});
          else if (cls.full === "collections.OrderedDict") {
            this.#stack.push(new Map());
          } else {
            this.#refuse(
              `the pickle creates an object of class ${cls.full} with ${
                describe(args)
              }, which tokenlab does not build; tokenlab only reads state dicts and never runs code from a checkpoint`,
            );
          }
          break;
        }
        case 0x62: { // BUILD
          const state = this.#pop();
          const obj = this.#top();
          this.#build(obj, state);
          break;
        }
        case 0x51: // BINPERSID
          this.#stack.push(this.#persistentLoad(this.#pop()));
          break;
        default: {
          const name = OPCODE_NAMES[op];
          this.#pos = at;
          this.#refuse(
            `the pickle uses ${
              name ? `opcode ${name}` : "an unknown opcode"
            } (0x${
              op.toString(16).padStart(2, "0")
            }) at byte ${at} of data.pkl, which tokenlab's restricted unpickler does not read; it reads what torch.save (pickle protocols 2 to 5) writes for tensors, dicts, lists, numbers and strings. Re-save the checkpoint in Python with torch.save(obj, path) holding only those`,
          );
        }
      }
    }
  }

  /** Refuses a result that still holds a bare global or storage (torch never writes one). */
  #checkResult(value: unknown): void {
    forEachReachable(value, true, (v) => {
      if (v instanceof Global || v instanceof StorageRef) {
        this.#refuse(
          `the unpickled object holds ${
            describe(v)
          } itself rather than a tensor built from it; tokenlab only reads state dicts and plain values`,
        );
      }
    });
  }

  #build(obj: unknown, state: unknown): void {
    if (obj instanceof Map) {
      // OrderedDict with attributes: a state dict's `_metadata`.
      pickleStates.set(obj, state as PickleValue);
      return;
    }
    if (obj instanceof TorchTensor) {
      pickleStates.set(obj, state as PickleValue);
      return;
    }
    if (
      obj !== null && typeof obj === "object" && !Array.isArray(obj) &&
      !(obj instanceof Uint8Array) && !(obj instanceof Global) &&
      !(obj instanceof StorageRef)
    ) {
      // A Namespace: state is its __dict__, or (dict, slots).
      let dict = state;
      if (Array.isArray(state) && state.length === 2) {
        dict = state[0] ?? state[1];
      }
      if (!(dict instanceof Map)) {
        this.#damaged(
          `expected a dict of attributes to BUILD a Namespace, found ${
            describe(state)
          }`,
        );
      }
      this.#spend(dict.size, "BUILD of a Namespace");
      for (const [k, v] of dict) {
        if (typeof k !== "string") {
          this.#damaged(`a Namespace attribute named by ${describe(k)}`);
        }
        setProp(obj as PickleRecord, k, v as PickleValue);
      }
      return;
    }
    this.#refuse(
      `the pickle sets the state of ${
        describe(obj)
      } (BUILD), which tokenlab does not do; it only reads state dicts`,
    );
  }
}
