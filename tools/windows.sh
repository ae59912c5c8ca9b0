#!/usr/bin/env bash
# Jalin on Windows, tried on Linux: cross-builds `jalin.exe` for x86_64-pc-windows-gnu
# (rustup's target, Debian's mingw-w64) and runs it under Debian's wine against real
# records beside the Linux build: the file-only commands (init, inspect, convert,
# import, search, export), then a node (start, import and search over its HTTP API),
# killed without warning and opened again. The same records imported on both must be
# found by the same searches. Exits non-zero on the first difference.
#
#   tools/windows.sh [RECORDS.mrc]      (default: the 3,147 LC records in ../shared/data)
#
# Debian 12's wine 8.0 lacks `ProcessPrng` (bcryptprimitives.dll), where Rust's standard
# library takes its random numbers on Windows 10 and later. The script builds a stub of
# that one function over `RtlGenRandom` with mingw and puts it beside the exe *in its own
# scratch directory only*: it is never part of what a library installs (Windows 10 and
# 11 have the real one).
set -euo pipefail
cd "$(dirname "$0")/.."
records=$(realpath "${1:-../shared/data/marc/loc/loc-indonesia-3147.mrc}")
[ -f "$records" ] || { echo "no records at $records" >&2; exit 2; }

need=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null 2>&1 || need+=(wine wine64)
command -v winepath >/dev/null 2>&1 || need+=(wine64)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup target list --installed | grep -qx x86_64-pc-windows-gnu \
  || rustup target add x86_64-pc-windows-gnu

echo "== building (Windows, then Linux)"
cargo build --quiet -p jalin-cli --target x86_64-pc-windows-gnu
cargo build --quiet -p jalin-cli
linux=$PWD/target/debug/jalin

work=$(mktemp -d)
trap 'wineserver -k 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/bin"
ln target/x86_64-pc-windows-gnu/debug/jalin.exe "$work/bin/jalin.exe" 2>/dev/null \
  || cp target/x86_64-pc-windows-gnu/debug/jalin.exe "$work/bin/jalin.exe"
cat > "$work/prng.c" <<'EOF'
/* Test-only stand-in for Windows 10's bcryptprimitives!ProcessPrng, which wine 8 lacks. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG n = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        length -= n;
    }
    return TRUE;
}
EOF
x86_64-w64-mingw32-gcc -shared -O2 -o "$work/bin/bcryptprimitives.dll" "$work/prng.c" -ladvapi32

export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="bcryptprimitives=n"
wineboot --init >/dev/null 2>&1 || true
win() { winepath -w "$1"; }
W() { wine "$work/bin/jalin.exe" "$@"; }
L() { "$linux" "$@"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# The hits of a search as "total id id id ...", from `jalin search --json`.
hits() {
  python3 -c 'import json,sys
r = json.load(sys.stdin)
print(r["total"], *[h["record_id"] for h in r["hits"]])'
}
queries=("indonesia" "sejarah" "title:bahasa" "author:pramoedya" "subject:islam" "year:1990..2000" "lang:ind jawa")

echo "== file-only commands under wine"
# (The data dir's access list is set with Windows' icacls at init; wine's icacls is a
# stub that changes and prints nothing, so it cannot be checked here.)
W --version
W --data-dir "$(win "$work/w")" init --name "Perpustakaan Desa" --code DESA >/dev/null
L --data-dir "$work/l" init --name "Perpustakaan Desa" --code DESA >/dev/null
W inspect --json "$(win "$records")" > "$work/inspect-w.json" || true
L inspect --json "$records" > "$work/inspect-l.json" || true
python3 - "$work/inspect-w.json" "$work/inspect-l.json" <<'EOF' || fail "inspect differs"
import json, sys
w, l = (json.loads(open(p).read().splitlines()[0]) for p in sys.argv[1:])
for key in ("records", "format"):
    if w.get(key) != l.get(key):
        sys.exit(f"{key}: wine {w.get(key)!r}, linux {l.get(key)!r}")
print("inspect:", w.get("records"), "records, as on Linux")
EOF
W convert "$(win "$records")" "$(win "$work/converted-w.xml")" >/dev/null
L convert "$records" "$work/converted-l.xml" >/dev/null
cmp -s "$work/converted-w.xml" "$work/converted-l.xml" || fail "convert to MARCXML differs"
echo "convert: MARCXML identical ($(stat -c %s "$work/converted-w.xml") bytes)"
W --data-dir "$(win "$work/w")" import "$(win "$records")" | tail -1
L --data-dir "$work/l" import "$records" | tail -1
for q in "${queries[@]}"; do
  # shellcheck disable=SC2086
  a=$(W --data-dir "$(win "$work/w")" search --json --per-page 50 $q | hits)
  # shellcheck disable=SC2086
  b=$(L --data-dir "$work/l" search --json --per-page 50 $q | hits)
  [ "$a" = "$b" ] || fail "search '$q': wine [$a] linux [$b]"
  echo "search '$q': ${a%% *} hits, the same as on Linux"
done
W --data-dir "$(win "$work/w")" export "$(win "$work/export-w.mrc")" >/dev/null
L --data-dir "$work/l" export "$work/export-l.mrc" >/dev/null
ew=$(L inspect --json "$work/export-w.mrc" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["records"])')
el=$(L inspect --json "$work/export-l.mrc" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["records"])')
[ "$ew" = "$el" ] || fail "export: wine $ew records, linux $el"
echo "export: $ew records, as on Linux"

echo "== a node under wine: start, import and search over HTTP, killed, opened again"
W --data-dir "$(win "$work/n")" init --name "Perpustakaan Desa" --code DESA >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
: > "$work/node.log"
W --data-dir "$(win "$work/n")" start --listen "127.0.0.1:$port" --p2p-listen /ip4/127.0.0.1/tcp/0 > "$work/node.log" 2>&1 &
for _ in $(seq 1 120); do
  grep -q "is serving" "$work/node.log" && break
  sleep 0.5
done
grep -q "is serving" "$work/node.log" || { cat "$work/node.log"; fail "the node did not start"; }
# The CLI finds the running node (its file in the data dir) and imports through its API.
W --data-dir "$(win "$work/n")" import "$(win "$records")" | tail -1
token=$(tr -d '\r\n' < "$work/n/api-token")
for q in "${queries[@]}"; do
  a=$(python3 - "$port" "$token" "$q" <<'EOF' | hits
import sys, urllib.parse, urllib.request
port, token, q = sys.argv[1:]
url = f"http://127.0.0.1:{port}/api/search?" + urllib.parse.urlencode({"q": q, "per_page": 50})
req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
sys.stdout.write(urllib.request.urlopen(req, timeout=30).read().decode())
EOF
)
  # shellcheck disable=SC2086
  b=$(L --data-dir "$work/l" search --json --per-page 50 $q | hits)
  [ "$a" = "$b" ] || fail "HTTP search '$q': wine node [$a] linux [$b]"
  echo "HTTP search '$q': ${a%% *} hits, the same as on Linux"
done
wineserver -k
wait || true
a=$(W --data-dir "$(win "$work/n")" search --json --per-page 50 indonesia | hits)
b=$(L --data-dir "$work/l" search --json --per-page 50 indonesia | hits)
[ "$a" = "$b" ] || fail "after the kill: wine [$a] linux [$b]"
echo "after the kill: the store opens and 'indonesia' finds ${a%% *}, as on Linux"
echo "windows: all passed"
