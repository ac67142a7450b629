#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (tests/console/) when /usr/bin/chromium is
# missing. Needs root (CI and the developers' machines run as root); a no-op when it is there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "scripts/chromium.sh: /usr/bin/chromium is missing and installing it needs root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk fonts-noto-color-emoji
test -x /usr/bin/chromium
