/**
 * Independent float64 reference implementations, written as plain loops over
 * row-major arrays, for checking what the tfjs backends compute.
 *
 * @module
 */

// Defined below the backends (backend_check.ts uses them); exported here.
export * from "../_reference.ts";
