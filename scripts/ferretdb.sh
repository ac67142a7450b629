#!/usr/bin/env bash
# Build FerretDB (a MongoDB wire-protocol server, Apache-2.0) once into a cache folder and
# print the binary's path. Rebuilt only when the binary is missing.
#
#   scripts/ferretdb.sh            -> .cache/ferretdb/v1.24.2/ferretdb
#
# Needs Go and the Go module proxy. `go install ...@v1.24.2` builds a binary that panics at
# start (its build/version/version.txt is empty in the module), so the module is copied, the
# version file written, and the binary built from the copy.
set -euo pipefail
VERSION="${FERRETDB_VERSION:-v1.24.2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${COORDD_FERRETDB_CACHE:-$ROOT/.cache/ferretdb}/$VERSION"
BIN="$CACHE/ferretdb"

if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "scripts/ferretdb.sh: Go is not installed; it is needed to build FerretDB" >&2
    exit 3
fi
mkdir -p "$CACHE"
echo "scripts/ferretdb.sh: building FerretDB $VERSION into $CACHE (once)" >&2
MOD_DIR="$(go mod download -json "github.com/FerretDB/FerretDB@$VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$MOD_DIR" || ! -d "$MOD_DIR" ]]; then
    echo "scripts/ferretdb.sh: could not download github.com/FerretDB/FerretDB@$VERSION" >&2
    exit 1
fi
SRC="$CACHE/src"
rm -rf "$SRC"
cp -r "$MOD_DIR" "$SRC"
chmod -R u+w "$SRC"
echo "$VERSION" > "$SRC/build/version/version.txt"
(cd "$SRC" && GOFLAGS=-mod=mod go build -o "$BIN.tmp" ./cmd/ferretdb)
mv "$BIN.tmp" "$BIN"
rm -rf "$SRC"
"$BIN" --version >/dev/null
echo "$BIN"
