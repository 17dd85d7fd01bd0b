#!/usr/bin/env bash
# Warehouse benchmark: `kluis generate --scale full` (time, peak memory, calibration), then the
# person-years CSV loaded by `kluis ingest` and by pandas.read_csv in the same run.
#
#   bash benches/warehouse/run.sh            # work files under a temporary directory
#   KLUIS_BENCH_DIR=/big/disk bash benches/warehouse/run.sh
#
# Needs about 4 GB of disk (the full-scale warehouse, its CSV export and the reloaded warehouse).
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
"$VENV/bin/pip" install --quiet --upgrade pandas

peak() { awk -F': ' '/Maximum resident set size/ {printf "%.0f MiB", $2/1024}' "$1"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1"; }
seconds() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$1"; }

echo "== generate --scale full (seed $SEED)"
rm -rf "$WORK/wh" "$WORK/wh2" "$WORK/csv"
/usr/bin/time -v "$BIN" generate --scale full --seed "$SEED" --warehouse "$WORK/wh" > "$WORK/generate.out" 2> "$WORK/generate.time"
tail -n 2 "$WORK/generate.out"
echo "generate: wall $(wall "$WORK/generate.time"), peak $(peak "$WORK/generate.time")"
"$BIN" warehouse info --warehouse "$WORK/wh" | sed -n '1,20p'

echo "== export to CSV"
/usr/bin/time -v "$BIN" warehouse export --warehouse "$WORK/wh" --out "$WORK/csv" 2> "$WORK/export.time"
echo "export: wall $(wall "$WORK/export.time"), peak $(peak "$WORK/export.time")"
ls -l "$WORK/csv"

echo "== kluis ingest (persons + person-years, every row checked, Parquet written)"
/usr/bin/time -v "$BIN" ingest --persons "$WORK/csv/persons.csv" --person-years "$WORK/csv/person_years.csv" \
  --warehouse "$WORK/wh2" 2> "$WORK/ingest.time"
echo "ingest: wall $(wall "$WORK/ingest.time"), peak $(peak "$WORK/ingest.time")"

echo "== pandas.read_csv (person-years only, nothing checked or written)"
/usr/bin/time -v "$VENV/bin/python" -c "
import sys, pandas as pd
df = pd.read_csv(sys.argv[1])
print(f'pandas read {len(df)} rows, {len(df.columns)} columns')
" "$WORK/csv/person_years.csv" 2> "$WORK/pandas.time"
echo "pandas: wall $(wall "$WORK/pandas.time"), peak $(peak "$WORK/pandas.time")"

ROWS_PY=$(($(wc -l < "$WORK/csv/person_years.csv") - 1))
ROWS_P=$(($(wc -l < "$WORK/csv/persons.csv") - 1))
TI=$(seconds "$WORK/ingest.time")
TP=$(seconds "$WORK/pandas.time")
python3 - "$ROWS_P" "$ROWS_PY" "$TI" "$TP" "$(peak "$WORK/ingest.time")" "$(peak "$WORK/pandas.time")" <<'PY'
import sys
persons, years, ti, tp, mi, mp = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
print("== summary")
print(f"kluis ingest : {persons + years:>11,} rows ({persons:,} persons + {years:,} person-years) in {ti:6.1f}s = {(persons + years) / ti:>11,.0f} rows/s, peak {mi}")
print(f"pandas       : {years:>11,} rows (person-years)                     in {tp:6.1f}s = {years / tp:>11,.0f} rows/s, peak {mp}")
print(f"ratio (kluis rows/s / pandas rows/s): {((persons + years) / ti) / (years / tp):.2f}")
PY
echo "work files in $WORK (delete when done)"
