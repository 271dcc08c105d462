// Bearer tokens: generation, the admin and join token files in the state dir, hashing for storage
// and comparison in constant time.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";

export function generateToken(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString("base64url")}`;
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Compares two secrets without leaking where they differ; unequal lengths compare as hashes. */
export function tokensEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

export interface LoadedToken {
  token: string;
  file: string;
  /** true when this start generated it (print it once). */
  generated: boolean;
  fromEnv: boolean;
}

/**
 * The token from `envValue` when set (and written to the file so local tools can find it), else
 * the one in the file, else a new one written with mode 0600.
 */
export function loadOrCreateToken(stateDir: string, name: "admin-token" | "join-token", envValue: string | undefined): LoadedToken {
  const file = join(stateDir, name);
  if (envValue && envValue.trim() !== "") {
    const token = envValue.trim();
    if (!existsSync(file) || readFileSync(file, "utf8").trim() !== token) writeSecret(file, token);
    return { token, file, generated: false, fromEnv: true };
  }
  if (existsSync(file)) {
    const token = readFileSync(file, "utf8").trim();
    if (token !== "") return { token, file, generated: false, fromEnv: false };
  }
  const token = generateToken(name === "admin-token" ? "lra" : "lrj");
  writeSecret(file, token);
  return { token, file, generated: true, fromEnv: false };
}

function writeSecret(file: string, value: string) {
  writeFileSync(file, value + "\n", { mode: 0o600 });
  chmodSync(file, 0o600);
}
