// Shared test infrastructure for tests that need real hosts (see README.md here):
//   await requireDocker();                       // fails clearly without an engine
//   const net = await createTestNetwork("prov");
//   const key = createSshKey(tmpDir);
//   const host = await startTestHost({ name: "gpu-a", network: net, publicKey: key.publicKey });
//   await host.sh("systemctl is-active ssh");     // docker exec, as root
//   await host.stop(); await net.remove();
export { requireDocker, docker, DockerUnavailableError } from "./docker.js";
export { ensureTestHostImage, testHostImageTag, debianMirror } from "./image.js";
export { createTestNetwork, type TestNetwork } from "./network.js";
export { createSshKey, type TestSshKey } from "./ssh-key.js";
export { startDsmLikeHost, dsmVersionFile, type DsmLikeHost } from "./dsm-host.js";
export { startTestHost, type TestHost, type TestHostOptions, type ExecResult } from "./test-host.js";
export { startTestBed, type TestBed } from "./test-bed.js";
