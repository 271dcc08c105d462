// What every view shares: its props (the state, the space it has, the clock) and the scrolling
// rule that keeps the cursor's rows on screen while rendering only the rows that fit.
import { Text } from "ink";
import type { ReactNode } from "react";
import type { TuiState } from "../state.js";

export interface ViewProps {
  state: TuiState;
  width: number;
  height: number;
  /** Epoch ms the ages are measured against (fixed in tests). */
  now: number;
}

/** The first row to show so that rows [selStart, selEnd] are visible in `height` rows. */
export function scrollOffset(total: number, height: number, selStart: number, selEnd: number): number {
  if (total <= height) return 0;
  const end = Math.min(selEnd, selStart + height - 1);
  const offset = Math.max(0, end - height + 1);
  return Math.min(offset, total - height);
}

/** One screen line that never wraps. */
export function Line({ children, dim, bold, inverse, color }: { children?: ReactNode; dim?: boolean; bold?: boolean; inverse?: boolean; color?: string }) {
  return (
    <Text wrap="truncate-end" dimColor={dim} bold={bold} inverse={inverse} color={color}>
      {children}
    </Text>
  );
}

/** A short note in place of an empty list. */
export function Note({ lines }: { lines: string[] }) {
  return (
    <>
      {lines.map((l, i) => (
        <Line key={i} bold={l.startsWith("  ")}>
          {l}
        </Line>
      ))}
    </>
  );
}

export const clampNum = (n: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, n));
