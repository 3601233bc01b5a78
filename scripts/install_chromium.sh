#!/usr/bin/env bash
# Install Debian's Chromium for the playground's browser test, when missing.
#   scripts/install_chromium.sh        # no-op when a chromium binary is already on the PATH
# The test drives it with Playwright through its executable path (RAGLINE_CHROMIUM overrides),
# because Playwright's own browser download needs the internet. Never fails the caller: without
# root or apt it says so and tests/serve/test_playground_browser.py skips, naming the package.
set -uo pipefail

say() { echo "install_chromium: $*" >&2; }

has_chromium() {
  [ -n "${RAGLINE_CHROMIUM:-}" ] && [ -x "${RAGLINE_CHROMIUM}" ] && return 0
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if has_chromium; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  say "Chromium is not installed and cannot be installed here (needs root and apt-get); the"
  say "browser test of the playground will skip (install Debian's 'chromium' package to run it)"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Another installer (install_postgres.sh, a parallel bootstrap) may hold the dpkg lock: wait.
APT=(apt-get -o DPkg::Lock::Timeout=600)
if "${APT[@]}" update -qq && "${APT[@]}" install -y -qq --no-install-recommends chromium \
  fonts-dejavu-core >/dev/null && has_chromium; then
  say "$(chromium --version 2>/dev/null || echo chromium) installed"
else
  say "could not install Debian's 'chromium' package; the playground's browser test will skip"
fi
exit 0
