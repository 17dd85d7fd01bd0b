#!/usr/bin/env bash
# Risk benchmark: kluis risk and kluis-risk's enforce_k against pandas groupby().size() and pycanon
# on a generated 1,000,000-row file with 8 quasi-identifiers. Fails when kluis's k or l figures
# differ from pycanon's.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ROWS=${ROWS:-1000000}
L_ROWS=${L_ROWS:-100000}   # pycanon's l-diversity over 8 QIs loops over classes in Python
K=${K:-5}
BUDGET=${BUDGET:-10000}    # records that may be suppressed locally after recoding (1 %)
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/kluis/bench-venv
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
QI=sex,age_class,region,nationality,origin,education,statuut,nace_section
SMALL_QI=sex,region,education
S=wage_band

command -v /usr/bin/time >/dev/null || apt-get install -y time >/dev/null
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q pycanon pandas numpy pyarrow

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -q -p kluis --bin kluis && cargo build --release -q -p kluis-risk --example enforce)
KLUIS=$TARGET/release/kluis
ENFORCE=$TARGET/release/examples/enforce

echo "generating $ROWS rows..."
"$VENV/bin/python" "$HERE/gen.py" --rows "$ROWS" --out "$WORK"
"$VENV/bin/python" -c "import pandas as pd; pd.read_parquet('$WORK/data.parquet').head($L_ROWS).to_parquet('$WORK/sub.parquet', index=False)"

peak() { grep "Maximum resident" "$1" | awk '{printf "%.0f MB", $6/1024}'; }
wall() { grep "Elapsed (wall" "$1" | awk '{print $8}'; }

/usr/bin/time -v "$KLUIS" risk --data "$WORK/data.parquet" --quasi-identifiers $QI --unit person --sensitive $S \
  --k "$K" --json --timings >"$WORK/full.json" 2>"$WORK/full.time"
"$KLUIS" risk --data "$WORK/data.parquet" --quasi-identifiers $SMALL_QI --sensitive $S --json >"$WORK/small_qi.json"
"$KLUIS" risk --data "$WORK/sub.parquet" --quasi-identifiers $QI --sensitive $S --json >"$WORK/subsample.json"
/usr/bin/time -v "$ENFORCE" "$WORK/data.parquet" "$WORK/hierarchies" "$K" "$BUDGET" >"$WORK/enforce.json" 2>"$WORK/enforce.time"
/usr/bin/time -v "$VENV/bin/python" "$HERE/baseline.py" "$WORK/data.parquet" "$WORK/sub.parquet" $QI $SMALL_QI $S \
  >"$WORK/python.json" 2>"$WORK/python.time"

"$VENV/bin/python" - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
json.dump({n: json.load(open(f"{w}/{n}.json")) for n in ("full", "small_qi", "subsample", "enforce", "python")},
          open(f"{w}/all.json", "w"))
PY

read_s=$(sed -n 's/^read \([0-9.]*\) s, analysis \([0-9.]*\) s.*/\1/p' "$WORK/full.time")
analysis_s=$(sed -n 's/^read \([0-9.]*\) s, analysis \([0-9.]*\) s.*/\2/p' "$WORK/full.time")
py() { "$VENV/bin/python" -c "import json; print(round(json.load(open('$WORK/python.json'))['$1'], 3))"; }
en() { "$VENV/bin/python" -c "import json; print(round(json.load(open('$WORK/enforce.json'))['$1'], 3))"; }
ratio() { "$VENV/bin/python" -c "print(f'{$1 / $2:.1f}x')"; }

echo
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "== risk analysis, $ROWS rows, 8 quasi-identifiers, unit and l-diversity (k=$K) =="
echo "kluis risk:         read $read_s s + analysis $analysis_s s, wall $(wall "$WORK/full.time"), peak $(peak "$WORK/full.time")"
echo "pandas groupby:     $(py pandas_seconds) s (sizes only; read $(py read_seconds) s)  -> kluis analysis $(ratio "$(py pandas_seconds)" "$analysis_s") faster"
echo "pycanon k:          $(py pycanon_k_seconds) s  -> kluis read+analysis is $(ratio "$(py pycanon_k_seconds)" "$read_s + $analysis_s") faster"
echo "pycanon l+entropy l, 3 QIs, full file: $(py pycanon_l_small_qi_seconds) s; 8 QIs on $L_ROWS rows: $(py pycanon_l_all_qi_seconds) s"
echo "python process peak: $(peak "$WORK/python.time")"
echo
echo "== k=$K by optimal global recoding + local suppression (budget $BUDGET records) =="
echo "kluis enforce_k:    read $(en read_seconds) s + search/recode/suppress $(en enforce_seconds) s, wall $(wall "$WORK/enforce.time"), peak $(peak "$WORK/enforce.time")"
echo
echo "== figures =="
"$VENV/bin/python" "$HERE/compare.py" "$WORK/all.json" "$S"
