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

/**
 * ssh2 1.17's generateKeyPairSync("ed25519") strips leading zero bytes of the public key, so about
 * 1 pair in 256 does not parse back (mscdex/ssh2 #1390, #1513): CI met one ("Malformed OpenSSH
 * private key"). Draw again until both halves parse.
 */
function parseableEd25519Pair(): { private: string; public: string } {
  for (let i = 0; i < 100; i++) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519", { comment: "labrig-test" });
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair;
  }
  throw new Error("ssh2 made 100 ed25519 key pairs in a row that it cannot parse back");
}

export function createSshKey(dir: string): TestSshKey {
  const pair = parseableEd25519Pair();
  const privateKeyFile = join(dir, "id_ed25519");
  writeFileSync(privateKeyFile, pair.private, { mode: 0o600 });
  writeFileSync(`${privateKeyFile}.pub`, pair.public + "\n");
  return { privateKeyFile, publicKey: pair.public };
}
