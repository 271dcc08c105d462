// One line for the dashboard from an error: labrig's own messages as they are, a network
// failure by its code (ECONNREFUSED), anything else by its message.
import { LabrigError, errorMessage } from "../core/errors.js";

export function describeError(err: unknown): string {
  if (err instanceof LabrigError) return err.message;
  const cause = (err as { cause?: { code?: string } }).cause;
  if (cause?.code) return cause.code;
  return errorMessage(err);
}
