#!/usr/bin/env bash
# Install what branchwise needs on a GitHub-hosted Ubuntu runner: bubblewrap, ripgrep, git, and branchwise.
set -euo pipefail
if command -v apt-get >/dev/null && [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi
missing=""
for pair in bwrap:bubblewrap rg:ripgrep git:git; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair##*:}"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# Ubuntu 24.04 restricts unprivileged user namespaces through AppArmor; bubblewrap needs them.
if [ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ]; then
  $SUDO sysctl -q -w kernel.apparmor_restrict_unprivileged_userns=0 || true
fi
spec="${INPUT_BRANCHWISE_SPEC:-}"
if [ -z "$spec" ]; then spec="${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/../.." && pwd)}"; fi
python3 -m pip install -q "$spec"
branchwise --version
