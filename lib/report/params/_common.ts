// Small helpers that the parser, resolution and injection share.

import type { NotebookCell } from "../notebook.ts";
import type { ParameterType } from "./spec.ts";

/** Sets an own, enumerable key (a "__proto__" key too). */
export function defineKey(
  obj: Record<string, unknown>,
  key: string,
  value: unknown,
) {
  // defineProperty: a "__proto__" key stays an ordinary key
  Object.defineProperty(obj, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** The kind of value `value` is, as a parameter type. */
export function typeOf(value: unknown): ParameterType {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "array";
  const t = typeof value;
  if (t === "number" || t === "string" || t === "boolean") return t;
  return "object";
}

/** Whether the cell carries `tag`. */
export function isParametersCell(cell: NotebookCell, tag: string): boolean {
  return Array.isArray(cell.metadata?.tags) && cell.metadata.tags.includes(tag);
}

/** A value as written in a message or a declaration. */
export function render(value: unknown): string {
  return value === undefined ? "undefined" : JSON.stringify(value);
}

/** A value as quoted after "found" in a message. */
export function foundText(value: unknown): string {
  // a message quotes the start of a huge value, not all of it
  const cut = (t: string) => t.length > 200 ? `${t.slice(0, 200)}...` : t;
  if (value === null) return "null";
  if (Array.isArray(value)) return `the list ${cut(JSON.stringify(value))}`;
  if (typeof value === "string") {
    return `the string ${cut(JSON.stringify(value))}`;
  }
  if (typeof value === "object") {
    return `the object ${cut(JSON.stringify(value))}`;
  }
  return `${typeof value} ${render(value)}`;
}
