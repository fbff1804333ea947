/**
 * The states a pickle attached to values with BUILD: written by the
 * unpickler, read through `pickleState`. Private to the torch reader.
 *
 * @module
 */

import type { PickleValue } from "./pickle_types.ts";

/** The state each value was built with, by value. */
export const pickleStates: WeakMap<object, PickleValue> = new WeakMap();
