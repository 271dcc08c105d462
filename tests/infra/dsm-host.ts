// A DSM-like test host: what provisioning meets on a Synology NAS (DSM 7), on a test host. No apt
// and no ufw; Docker only where Container Manager puts it (/usr/local/bin/docker) with a socket only
// root may open; /volume1, /usr/syno and /etc.defaults/VERSION as DSM has them; the rc.d folder
// whose *.sh DSM runs at boot; and a sudo that asks the admin's password. It still boots with
// systemd (that is how test hosts run), but nothing labrig does there may rely on it:
// `runBootScripts` runs the rc.d scripts the way DSM does at boot.
//
//   const nas = await startDsmLikeHost({ name: "nas", network: net, publicKey, sudoPassword: "pw" });
import { startTestHost, type TestHost, type TestHostOptions } from "./test-host.js";

export const dsmVersionFile = `majorversion="7"
minorversion="2"
major="7"
minor="2"
micro="1"
productversion="7.2.1"
buildphase="GM"
buildnumber="69057"
smallfixnumber="5"
`;

export interface DsmLikeHost extends TestHost {
  /** What DSM does at boot for packages' scripts: `sh SCRIPT start` for each /usr/local/etc/rc.d/*.sh. */
  runBootScripts(): Promise<void>;
}

export async function startDsmLikeHost(opts: Omit<TestHostOptions, "sudo"> & { sudoPassword: string }): Promise<DsmLikeHost> {
  const host = await startTestHost({ ...opts, sudo: "password" });
  try {
    // Container Manager's engine and DSM's iptables, installed while apt is still there.
    await host.sh(
      "DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=120 update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=120 install --no-install-recommends docker.io iptables >/dev/null",
    );
    await host.sh(
      [
        "mv /usr/bin/docker /usr/local/bin/docker",
        // Root only: DSM's docker.sock is root:root 0660 with no docker group anyone is in.
        "mkdir -p /etc/systemd/system/docker.socket.d",
        "printf '[Socket]\\nSocketUser=root\\nSocketGroup=root\\nSocketMode=0600\\n' > /etc/systemd/system/docker.socket.d/dsm.conf",
        "systemctl daemon-reload",
        "systemctl stop docker.service docker.socket",
        "systemctl start docker.socket docker.service",
        // No apt, no ufw: DSM has neither.
        "rm -f /usr/bin/apt /usr/bin/apt-get /usr/bin/apt-cache /usr/bin/apt-mark /usr/sbin/ufw",
        "mkdir -p /volume1 /usr/syno/bin /usr/local/etc/rc.d /etc.defaults",
        `cat > /etc.defaults/VERSION <<'V'\n${dsmVersionFile}V`,
      ].join(" && "),
    );
    await host.sh("/usr/local/bin/docker info --format '{{.ServerVersion}}' >/dev/null && test \"$(stat -c '%U:%G %a' /run/docker.sock)\" = 'root:root 600' && ! command -v apt-get && ! command -v ufw && test ! -e /usr/bin/docker");
  } catch (err) {
    await host.stop();
    throw err;
  }
  return {
    ...host,
    runBootScripts: async () => {
      await host.sh("for s in /usr/local/etc/rc.d/*.sh; do [ -x \"$s\" ] && sh \"$s\" start; done");
    },
  };
}
