// An SSH key pair for a test, written to a folder the test owns (the private key 0600, as ssh
// clients insist), so the provisioning engine authenticates to test hosts the way it would to a
// real one: with an identity file.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import ssh2 from "ssh2";

export interface TestSshKey {
  privateKeyFile: string;
  /** The `ssh-ed25519 AAAA...` line for authorized_keys. */
  publicKey: string;
}

export function createSshKey(dir: string): TestSshKey {
  const pair = ssh2.utils.generateKeyPairSync("ed25519", { comment: "labrig-test" });
  const privateKeyFile = join(dir, "id_ed25519");
  writeFileSync(privateKeyFile, pair.private, { mode: 0o600 });
  writeFileSync(`${privateKeyFile}.pub`, pair.public + "\n");
  return { privateKeyFile, publicKey: pair.public };
}
