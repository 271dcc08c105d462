// Text from the API (job names, GPU names, errors, logs) reaches operators' terminals: control
// characters in it are shown as visible escapes (\x1b), so a job or an agent cannot move the
// cursor, retitle the window or write to the clipboard of whoever looks at it.

// C0 controls, DEL and C1 controls.
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;
// The same without the global flag, for a test that keeps no state between calls.
const HAS_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// The same without tab and newline, for multi-line text.
const CONTROLS_BUT_LAYOUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

const escape = (c: string): string => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;

/** One line of text with every control character made visible (including newlines). */
export function visible(s: string): string {
  return HAS_CONTROL.test(s) ? s.replace(CONTROLS, escape) : s;
}

/**
 * Multi-line text (a log) with tabs and newlines kept: a CRLF becomes a newline, a lone carriage
 * return (progress bars) starts a new line, and every other control character is made visible.
 */
export function visibleText(s: string): string {
  return s.replace(/\r\n/g, "\n").replace(/\r/g, "\n").replace(CONTROLS_BUT_LAYOUT, escape);
}

// In JSON text a C0 control is always escaped (\n, \t, \b, \f, \r or \u00XX), a DEL or C1 control
// may be escaped or raw. A text this does not match parses to strings free of controls; a match may
// be a false alarm (an escaped backslash before an n), which only costs a walk.
const JSON_CONTROL = /\\[bfnrt]|\\u00[0189][0-9a-f]|\\u007f|[\u007f-\u009f]/i;

/** Whether `JSON.parse(text)` may hold a control character anywhere, keys included; false is certain. */
export function jsonMayHoldControls(text: string): boolean {
  return JSON_CONTROL.test(text);
}

/**
 * A value from the API with every string in it (keys too) made visible, for screens that print fields as they come.
 * Parts with nothing to escape are returned as they are (the dashboard runs this on 400 device updates a second).
 */
export function visibleDeep<T>(v: T): T {
  if (typeof v === "string") return visible(v) as T;
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const y = visibleDeep(x);
      if (!out && y !== x) out = v.slice(0, i);
      out?.push(y);
    }
    return (out ?? v) as T;
  }
  const src = v as Record<string, unknown>;
  const keys = Object.keys(src);
  let out: Record<string, unknown> | null = null;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const x = src[k];
    const vk = visible(k);
    const y = visibleDeep(x);
    if (!out && (vk !== k || y !== x)) {
      out = {};
      for (let j = 0; j < i; j++) out[keys[j]!] = src[keys[j]!];
    }
    if (out) out[vk] = y;
  }
  return (out ?? v) as T;
}
