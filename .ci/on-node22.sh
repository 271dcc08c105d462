#!/usr/bin/env bash
# Runs the runtime-sensitive test folders (or the ones given) on Node 22 (the oldest line `engines` allows), with the
# Node binary from npm's node-linux-<arch> package unpacked into a cache folder (no other download).
# Every child the tests start uses process.execPath, so the whole run stays on that Node.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${LABRIG_CI_NODE22:-22.23.3}
case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) echo "on-node22: no Node package for $(uname -m)" >&2; exit 1 ;; esac
dir="${XDG_CACHE_HOME:-$HOME/.cache}/labrig-ci/node-$version-$arch"
if [[ ! -x $dir/bin/node ]]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$version" >/dev/null && mkdir -p "$dir" && tar xzf node-linux-*.tgz -C "$dir" --strip-components=1)
  rm -rf "$tmp"
fi
folders=("$@")
((${#folders[@]})) || folders=(tests/core tests/dispatcher tests/cli tests/backup)
echo "ci: node $("$dir/bin/node" --version): ${folders[*]}"
"$dir/bin/node" node_modules/vitest/vitest.mjs run "${folders[@]}"
