#!/usr/bin/env bash
# rust-toolchain.toml pins the release the tests pass on. rustup installs it on a
# machine that lacks it, which needs the network; a machine whose one toolchain is
# that same release under another name (`stable`) gets it linked under the pinned
# name instead, so cargo works offline. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
pinned=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
home=${RUSTUP_HOME:-$HOME/.rustup}
if rustup toolchain list 2>/dev/null | grep -q "^$pinned"; then
  exit 0
fi
for t in $(rustup toolchain list 2>/dev/null | awk '{print $1}'); do
  version=$(rustup run "$t" rustc --version 2>/dev/null | awk '{print $2}')
  if [ "$version" = "$pinned" ]; then
    sysroot=$(rustup run "$t" rustc --print sysroot)
    host=$(rustup run "$t" rustc -vV | sed -n 's/^host: //p')
    ln -s "$sysroot" "$home/toolchains/$pinned-$host"
    echo "toolchain $pinned: using the installed $t (the same release)"
    exit 0
  fi
done
echo "toolchain $pinned is not installed; rustup will install it (rust-toolchain.toml)"
