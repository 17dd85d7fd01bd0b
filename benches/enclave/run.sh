#!/usr/bin/env bash
# Enclave benchmark: `kluis job run --on full` of a job with a 4-D count table and a 3-D mean
# table on a `--scale full` warehouse (about 46M person-years), end to end: the full-population
# view built from the warehouse (numbering, derivation, coding), both outputs with every margin
# and per-person unit statistics, disclosure control (primary rules, linked secondary
# suppression, audit, ledger checks) and storing the pending outputs. Side by side with pandas +
# ACRO computing and checking the same two tables on a Parquet export of the same view.
#
#   bash benches/enclave/run.sh             # work files under a temporary directory
#   KLUIS_BENCH_DIR=/big/disk bash benches/enclave/run.sh
#
# Targets (issue 8): at most 20 s and 4 GiB on 2 cores; with ten more released tables in the
# ledger, at most 5 s more (issue 15). An existing warehouse at
# $KLUIS_BENCH_DIR/wh is reused (`kluis generate --scale full` takes about 45 s).
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
# A private copy: a build running meanwhile must not replace the binary being measured.
BIN="$WORK/kluis"
cp "$TARGET/release/kluis" "$BIN"

echo "== installing the pandas + ACRO baseline into $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# pandas is pinned: the venv is shared with the other benchmarks, and acro needs pandas 2.
"$VENV/bin/python" -c "import acro, pandas, pyarrow" 2>/dev/null \
  || "$VENV/bin/pip" install --quiet "pandas==2.3.3" pyarrow acro

peak() { awk -F': ' '/Maximum resident set size/ {printf "%.0f MiB", $2/1024}' "$1"; }
seconds() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$1"; }

if [ ! -f "$WORK/wh/warehouse.json" ]; then
  echo "== generate --scale full (seed $SEED)"
  "$BIN" generate --scale full --seed "$SEED" --warehouse "$WORK/wh" | tail -n 1
fi

echo "== state, the demo project, and the job"
export KLUIS_HOME="$WORK/state"
rm -rf "$KLUIS_HOME" "$WORK/job"
KLUIS_ACTOR=sam "$BIN" init > /dev/null
KLUIS_ACTOR=sam "$BIN" project create --authorisation "$ROOT/examples/demo-authorisation.toml" > /dev/null
mkdir -p "$WORK/job"
cat > "$WORK/job/job.toml" <<'TOML'
name = "bench"
description = "A 4-D count table and a 3-D mean table over the full population"
project = "99/001"

[[output]]
name = "person_years"
sql = "person_years.sql"
statistic = "count"

[[output]]
name = "years_registered"
sql = "years_registered.sql"
statistic = "mean"
TOML
echo "SELECT year, region, sex, age, count(*) AS person_years FROM person_years GROUP BY year, region, sex, age" \
  > "$WORK/job/person_years.sql"
echo "SELECT region, sex, age, avg(year - registration_date) AS mean_years FROM person_years GROUP BY region, sex, age" \
  > "$WORK/job/years_registered.sql"

echo "== export of the view for the baseline (a steward's diagnostic, inside the state directory; not timed)"
KLUIS_ACTOR=sam "$BIN" job run "$WORK/job" --on full --project 99-001 --warehouse "$WORK/wh" \
  --export-view > /dev/null
VIEW="$KLUIS_HOME/projects/99-001/view/person_years.parquet"

echo "== kluis job run --on full"
/usr/bin/time -v env KLUIS_ACTOR=rita "$BIN" job run "$WORK/job" --on full --project 99-001 \
  --warehouse "$WORK/wh" --memory-limit 3G 2> "$WORK/kluis.time" | tee "$WORK/kluis.out"
grep -v '^\s' "$WORK/kluis.time" | grep -v '^Command' || true

echo "== pandas + ACRO on the exported view"
/usr/bin/time -v "$VENV/bin/python" "$ROOT/benches/enclave/baseline.py" "$VIEW" \
  2> "$WORK/pandas.time" | tee "$WORK/pandas.out"

TK=$(seconds "$WORK/kluis.time")
TP=$(seconds "$WORK/pandas.time")
echo "== summary"
printf 'kluis job run --on full : %6.1fs, peak %s (targets: at most 20 s and 4096 MiB)\n' "$TK" "$(peak "$WORK/kluis.time")"
printf 'pandas + ACRO           : %6.1fs, peak %s (reading the exported view included)\n' "$TP" "$(peak "$WORK/pandas.time")"
python3 -c "import sys; print(f'ratio (pandas+ACRO time / kluis time): {float(sys.argv[2]) / float(sys.argv[1]):.2f}')" "$TK" "$TP"

# The ledger at work: ten more full-scale tables released (five runs of the job by other
# dimensions, and over other rows for the mean), then the job again, judged against all of them.
release_pending() {
  for id in $(KLUIS_ACTOR=vera "$BIN" output list --project 99-001 --json \
      | python3 -c "import json,sys; print(' '.join(r['id'] for r in json.load(sys.stdin) if r['status']=='pending' and r['verdict']!='fail'))"); do
    KLUIS_ACTOR=vera "$BIN" output release "$id" --reason "benchmark" > /dev/null || true
  done
}
echo "== releasing ten more full-scale tables into the ledger (not timed)"
release_pending
for dims in "year, region" "year, sex, age" "region, sex, age" "year, age" "year, region, sex"; do
  echo "SELECT $dims, count(*) AS person_years FROM person_years GROUP BY $dims" > "$WORK/job/person_years.sql"
  echo "SELECT $dims, avg(year - registration_date) AS mean_years FROM person_years WHERE year >= 2012 GROUP BY $dims" \
    > "$WORK/job/years_registered.sql"
  KLUIS_ACTOR=rita "$BIN" job run "$WORK/job" --on full --project 99-001 --warehouse "$WORK/wh" \
    --memory-limit 3G > /dev/null
  release_pending
done
RELEASED=$(KLUIS_ACTOR=vera "$BIN" output list --project 99-001 --json \
  | python3 -c "import json,sys; print(sum(r['status']=='released' for r in json.load(sys.stdin)))")
echo "SELECT year, region, sex, age, count(*) AS person_years FROM person_years GROUP BY year, region, sex, age" \
  > "$WORK/job/person_years.sql"
echo "SELECT region, sex, age, avg(year - registration_date) AS mean_years FROM person_years GROUP BY region, sex, age" \
  > "$WORK/job/years_registered.sql"
echo "== kluis job run --on full, with $RELEASED released tables in the ledger"
/usr/bin/time -v env KLUIS_ACTOR=rita "$BIN" job run "$WORK/job" --on full --project 99-001 \
  --warehouse "$WORK/wh" --memory-limit 3G 2> "$WORK/kluis-ledger.time" | tee "$WORK/kluis-ledger.out"
TL=$(seconds "$WORK/kluis-ledger.time")
printf 'kluis job run --on full, %s released tables in the ledger: %6.1fs, peak %s (target: at most 5 s more than %.1fs)\n' \
  "$RELEASED" "$TL" "$(peak "$WORK/kluis-ledger.time")" "$TK"
echo "work files in $WORK (delete when done)"
