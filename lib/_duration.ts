/**
 * Seconds as a short human duration, for progress lines and tables (internal).
 *
 * @module
 */

/** Seconds as `45s`, `1m20s`, `2h03m` or `1d04h`; `?` when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) {
    return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h${
      String(Math.floor((s % 3600) / 60)).padStart(2, "0")
    }m`;
  }
  return `${Math.floor(s / 86400)}d${
    String(Math.floor((s % 86400) / 3600)).padStart(2, "0")
  }h`;
}
