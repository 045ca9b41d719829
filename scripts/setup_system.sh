#!/bin/sh
# System packages the tests use, from Debian's registry: Chromium for the headless site test.
# Skipped quietly when already present; needs root (as on CI machines of this kind) otherwise.
set -e
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test ..."
  (apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null)) \
    || echo "warning: could not install chromium; the browser test will be skipped" >&2
else
  echo "note: chromium not installed (needs root); the browser test will be skipped" >&2
fi
