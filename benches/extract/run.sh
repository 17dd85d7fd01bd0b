#!/usr/bin/env bash
# Extract benchmark: `kluis extract` of the demo authorisation from a `--scale full` warehouse
# (pseudonymising the whole qualifying population, sampling, coding, writing), against the same
# selection, HMAC and sampling in pandas (baseline.py) on the same Parquet files, in one run.
#
#   bash benches/extract/run.sh             # work files under a temporary directory
#   KLUIS_BENCH_DIR=/big/disk bash benches/extract/run.sh
#
# Needs about 1 GB of disk. An existing full-scale warehouse at $KLUIS_BENCH_DIR/wh is reused.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="${KLUIS_BENCH_DIR:-$(mktemp -d)}"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/kluis/bench-venv"
SEED="${SEED:-1}"
mkdir -p "$WORK"

if [ ! -x /usr/bin/time ]; then
  apt-get install -y time >/dev/null
fi
echo "== building kluis (release)"
(cd "$ROOT" && cargo build --release -p kluis --quiet)
BIN="$TARGET/release/kluis"

echo "== installing the pandas baseline into $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pandas pyarrow

peak() { awk -F': ' '/Maximum resident set size/ {printf "%.0f MiB", $2/1024}' "$1"; }
seconds() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$1"; }

if [ ! -f "$WORK/wh/warehouse.json" ]; then
  echo "== generate --scale full (seed $SEED)"
  "$BIN" generate --scale full --seed "$SEED" --warehouse "$WORK/wh" | tail -n 1
fi

echo "== kluis extract of the demo authorisation"
export KLUIS_HOME="$WORK/state" KLUIS_ACTOR=sam
rm -rf "$KLUIS_HOME" "$WORK/kluis-out" "$WORK/pandas-out"
"$BIN" init > /dev/null
"$BIN" project create --authorisation "$ROOT/examples/demo-authorisation.toml" > /dev/null
/usr/bin/time -v "$BIN" extract --project 99/001 --warehouse "$WORK/wh" --out "$WORK/kluis-out" \
  --seed "$SEED" 2> "$WORK/kluis.time" | tee "$WORK/kluis.out"
grep -v '^\s' "$WORK/kluis.time" | grep -v '^Command' || true

echo "== pandas baseline (same selection, HMAC of every qualifying person, sample, write)"
/usr/bin/time -v "$VENV/bin/python" "$ROOT/benches/extract/baseline.py" "$WORK/wh" "$WORK/pandas-out" \
  "$ROOT/crates/kluis-model/codelists/employer_types.csv" "$ROOT/examples/demo-authorisation.toml" \
  "$SEED" 2> "$WORK/pandas.time"

TK=$(seconds "$WORK/kluis.time")
TP=$(seconds "$WORK/pandas.time")
echo "== summary"
printf 'kluis extract : %6.1fs, peak %s (target: at most 60 s)\n' "$TK" "$(peak "$WORK/kluis.time")"
printf 'pandas        : %6.1fs, peak %s\n' "$TP" "$(peak "$WORK/pandas.time")"
python3 -c "import sys; print(f'ratio (pandas time / kluis time): {float(sys.argv[2]) / float(sys.argv[1]):.2f}')" "$TK" "$TP"
echo "work files in $WORK (delete when done)"
