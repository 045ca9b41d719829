#!/bin/sh
# System packages from Debian's registry: Chromium for the headless site test, pango for
# WeasyPrint (the paper's PDF), and the human-written English the SAE study's corpus is read from
# (wordnet-base, fortunes, bible-kjv, python3-doc: pipeline/saefeatures/README.md). Skipped quietly
# when already present; needs root (as on CI machines of this kind) otherwise. Without them the
# browser test is skipped, the paper is built without its PDF (with a note), and the SAE corpus
# node stops with one line naming the missing package.
set -e
PATH="$PATH:/sbin:/usr/sbin"
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -f /usr/share/wordnet/data.noun ] || missing="$missing wordnet-base"
[ -f /usr/share/games/fortunes/fortunes ] || missing="$missing fortunes"
[ -x /usr/bin/bible ] || missing="$missing bible-kjv"
ls -d /usr/share/doc/python3*/html/_sources >/dev/null 2>&1 || missing="$missing python3-doc"
for lib in libpango-1.0 libpangoft2-1.0; do
  ldconfig -p 2>/dev/null | grep -q "$lib.so" || missing="$missing $lib-0"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing from Debian:$missing ..."
  # shellcheck disable=SC2086  # the package list is meant to split
  (apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 \
    || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends $missing >/dev/null)) \
    || echo "warning: could not install$missing; the browser test, the paper's PDF or the SAE corpus will be missing" >&2
else
  echo "note:$missing not installed (needs root); the browser test, the paper's PDF or the SAE corpus will be missing" >&2
fi
