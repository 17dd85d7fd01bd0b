#!/usr/bin/env bash
# kluis sdc benchmark, side by side with ACRO (pip install acro) in one invocation.
#   (1) `kluis sdc table` on 10M rows (one row per person), 4-D mean with all margins, vs ACRO's
#       crosstab on the same CSV; verdicts compared cell by cell (rows = units here).
#   (2) `kluis sdc protect` (secondary suppression + LP audit) of a 4-D table of 3,564 cells.
# Usage: benches/sdc/run.sh [ROWS]   (default 10000000)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rows="${1:-10000000}"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/kluis/bench-venv"
work="${KLUIS_BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kluis/bench-sdc}"
mkdir -p "$work"

command -v /usr/bin/time >/dev/null || { echo "installing GNU time"; apt-get install -y time >/dev/null; }
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/python" -c "import acro, pyarrow, numpy" 2>/dev/null || "$venv/bin/pip" install -q acro pyarrow numpy

(cd "$root" && cargo build --release -p kluis --quiet)
kluis="${CARGO_TARGET_DIR:-$root/target}/release/kluis"

data="$work/microdata-$rows.csv"
[ -f "$data" ] || { echo "generating $rows rows"; "$venv/bin/python" "$here/gen.py" microdata "$data" "$rows" 7; }
table="$work/table-3564.csv"
[ -f "$table" ] || "$venv/bin/python" "$here/gen.py" table "$table" 11

peak() { grep "Maximum resident set size" "$1" | awk '{printf "%.0f MB", $6/1024}'; }
elapsed() { grep "Elapsed (wall clock)" "$1" | awk '{print $8}'; }
seconds() { python3 -c "import sys; p=sys.argv[1].split(':'); print(sum(float(x)*60**i for i,x in enumerate(reversed(p))))" "$1"; }

echo "== (1) sdc table: mean(income) by region, age, sex, sector on $rows rows =="
/usr/bin/time -v "$kluis" sdc table --data "$data" --unit person --by region,age,sex,sector --mean income --json \
  > "$work/kluis.json" 2> "$work/kluis.time"
/usr/bin/time -v "$venv/bin/python" "$here/acro_run.py" "$data" "$work/acro.json" \
  > "$work/acro.out" 2> "$work/acro.time"
k=$(seconds "$(elapsed "$work/kluis.time")"); a=$(seconds "$(elapsed "$work/acro.time")")
printf "kluis: %6.2f s  peak %s  (%s cells, status %s)\n" "$k" "$(peak "$work/kluis.time")" \
  "$(python3 -c "import json;d=json.load(open('$work/kluis.json'));print(len(d['cells']))")" \
  "$(python3 -c "import json;print(json.load(open('$work/kluis.json'))['status'])")"
printf "ACRO:  %6.2f s  peak %s  (%s)\n" "$a" "$(peak "$work/acro.time")" "$(tail -1 "$work/acro.out")"
python3 -c "print(f'ratio ACRO / kluis: {$a / $k:.1f}x')"
"$venv/bin/python" "$here/compare.py" "$work/kluis.json" "$work/acro.json" || echo "VERDICTS DIFFER"

echo "== (2) sdc protect: secondary suppression + audit of a 4-D table of 3,564 cells =="
/usr/bin/time -v "$kluis" sdc protect --table "$table" --json > "$work/protect.json" 2> "$work/protect.time"
python3 - "$work/protect.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s, a = r["secondary"], r["audit"]
primary = sum(1 for c in r["cells"] if c["status"] == "primary")
secondary = sum(1 for c in r["cells"] if c["status"] == "secondary")
print(f"cells {len(r['cells'])}, primary {primary}, secondary {secondary}, method {s['method']}, "
      f"search {s['seconds']:.2f} s; audit passed={a['passed']} ({a['checked']} checked, "
      f"{a['derivable']} derivable, {a['underprotected']} under-protected); status {r['status']}")
PY
printf "protect total: %s s  peak %s\n" "$(seconds "$(elapsed "$work/protect.time")")" "$(peak "$work/protect.time")"
