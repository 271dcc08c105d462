// Text from the API (job names, GPU names, errors, logs) reaches operators' terminals: control
// characters in it are shown as visible escapes (\x1b), so a job or an agent cannot move the
// cursor, retitle the window or write to the clipboard of whoever looks at it.

// C0 controls, DEL and C1 controls.
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;
// The same without tab and newline, for multi-line text.
const CONTROLS_BUT_LAYOUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

const escape = (c: string): string => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;

/** One line of text with every control character made visible (including newlines). */
export function visible(s: string): string {
  return s.replace(CONTROLS, escape);
}

/**
 * Multi-line text (a log) with tabs and newlines kept: a CRLF becomes a newline, a lone carriage
 * return (progress bars) starts a new line, and every other control character is made visible.
 */
export function visibleText(s: string): string {
  return s.replace(/\r\n/g, "\n").replace(/\r/g, "\n").replace(CONTROLS_BUT_LAYOUT, escape);
}

/** A value from the API with every string in it (keys too) made visible, for screens that print fields as they come. */
export function visibleDeep<T>(v: T): T {
  if (typeof v === "string") return visible(v) as T;
  if (Array.isArray(v)) return v.map(visibleDeep) as T;
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[visible(k)] = visibleDeep(x);
    return out as T;
  }
  return v;
}
