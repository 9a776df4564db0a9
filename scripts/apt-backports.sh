#!/bin/bash
# Adds Debian's bookworm-backports suite to the HOST's apt sources (for QEMU 10: bookworm's QEMU
# 7.2 double-faults under TCG while unpacking the guest's initramfs), using the same Debian mirror
# as the host's bookworm entry, then runs apt-get update. Idempotent. (The image build itself
# never touches the host's sources: it has its own private apt configuration.)
set -euo pipefail
if apt-get indextargets --format '$(CODENAME)' 2>/dev/null | grep -qx bookworm-backports; then
  exit 0
fi
uri=$(apt-get indextargets --format '$(REPO_URI) $(CODENAME)' | awk '$2 == "bookworm" { print $1; exit }')
if [ -z "$uri" ]; then
  echo "apt-backports.sh: the host's apt sources have no Debian bookworm entry to derive a mirror from" >&2
  exit 1
fi
cat > /etc/apt/sources.list.d/bookworm-backports.sources <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
echo "apt-backports.sh: added bookworm-backports ($uri) to the host's apt sources"
apt-get update -qq
