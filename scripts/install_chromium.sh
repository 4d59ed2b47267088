#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests when it is missing and we are root.
# The browser tests use Playwright's Python client driving /usr/bin/chromium (Playwright's own browser
# download cannot work on machines that only reach package registries).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium is missing and this is not root: install it (e.g. 'sudo apt-get install chromium');" \
       "browser tests will be skipped with that reason." >&2
fi
