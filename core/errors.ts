// Errors a user can act on: each says what went wrong, where, and what to do, and keeps its cause.

export class LabrigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad input: a file, field or flag that is wrong. `where` names it (file:line:col, host.field, --flag). */
export class InputError extends LabrigError {
  constructor(
    readonly where: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${where}: ${message}`, options);
  }
}

/** The dispatcher answered with an error status. */
export class ApiError extends LabrigError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body?: unknown,
  ) {
    super(`${message} (HTTP ${status} ${code})`);
  }
}

/** The dispatcher answered, but not in the shape this version of the API has (another labrig version). */
export class IncompatibleDispatcherError extends LabrigError {}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
