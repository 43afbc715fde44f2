#!/usr/bin/env bash
# Install the real data the demo needs without root: `apt-get download` each Debian package and `dpkg -x` it into
# $WIT_CACHE/debian/root; extract the enwiki dump sample from the gensim wheel. Idempotent: a stamp per item.
set -euo pipefail

CACHE="${WIT_CACHE:-$HOME/.cache/wit}"
ROOT="$CACHE/debian/root"
STAMPS="$CACHE/debian/stamps"
PY="${PYTHON:-.venv/bin/python}"
# WIT_DEBIAN_PACKAGES overrides the list; WIT_APT_UPDATE=0 never refreshes apt's lists (tests: no network at all).
read -r -a PACKAGES <<< "${WIT_DEBIAN_PACKAGES:-openclipart-png openclipart-svg tuxpaint-stamps-default fonts-noto-color-emoji unicode-data wordnet-base}"

mkdir -p "$ROOT" "$STAMPS"
updated=0
for pkg in "${PACKAGES[@]}"; do
  [ -f "$STAMPS/$pkg" ] && continue
  tmp=$(mktemp -d)
  echo "data: fetching Debian package $pkg"
  if ! (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>"$tmp/err"); then
    if [ "$updated" = 0 ] && [ "$(id -u)" = 0 ] && [ "${WIT_APT_UPDATE:-1}" != 0 ]; then
      echo "data: refreshing the apt package lists (apt-get update)"
      apt-get update -qq >/dev/null 2>&1 || true
      updated=1
    fi
    if ! (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>"$tmp/err"); then
      cat "$tmp/err" >&2
      echo "data: could not fetch Debian package '$pkg'. Get it by hand and unpack it into the cache:" >&2
      echo "        apt-get download $pkg && dpkg -x ${pkg}_*.deb $ROOT && touch $STAMPS/$pkg" >&2
      echo "      (or, as root, 'apt-get install $pkg'), then run the command again." >&2
      rm -rf "$tmp"; exit 1
    fi
  fi
  dpkg -x "$tmp"/*.deb "$ROOT"
  rm -rf "$tmp"
  touch "$STAMPS/$pkg"
done

# The real shortened English Wikipedia dump that ships inside the gensim wheel (not an installed gensim: only this file).
WIKI="$CACHE/wiki/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
if [ ! -f "$WIKI" ]; then
  echo "data: extracting the enwiki dump sample from the gensim wheel"
  tmp=$(mktemp -d)
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" gensim==4.4.0 >/dev/null 2>"$tmp/err"; then
    cat "$tmp/err" >&2
    echo "data: could not download the gensim wheel; run 'pip download --no-deps gensim==4.4.0' by hand and" >&2
    echo "      unzip gensim/test/test_data/$(basename "$WIKI") into $CACHE/wiki/" >&2
    rm -rf "$tmp"; exit 1
  fi
  mkdir -p "$CACHE/wiki"
  "$PY" - "$tmp" "$WIKI" <<'PYEOF'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/gensim-*.whl")[0]
member = "gensim/test/test_data/" + sys.argv[2].rsplit("/", 1)[1]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2] + ".part", "wb") as out:
    out.write(z.read(member))
PYEOF
  mv "$WIKI.part" "$WIKI"
  rm -rf "$tmp"
fi
echo "data: ready in $CACHE"
