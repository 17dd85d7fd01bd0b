"""Runs ACRO's crosstab (mean of income by region, age, sex x sector, margins) on the benchmark
microdata and writes, per check, the cells it flags as `dims... -> [checks]` JSON."""
import json
import sys
import time

import pandas as pd

t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], engine="pyarrow")
t1 = time.perf_counter()
from acro import ACRO  # noqa: E402

acro = ACRO(suppress=True)
table = acro.crosstab(
    [df.region, df.age, df.sex], df.sector, values=df.income, aggfunc="mean", margins=True
)
t2 = time.perf_counter()
out = acro.results.get_index(0)
sdc = out.sdc
flags = {}
# ACRO's check names changed between releases (threshold / MinimumThresholdCheck, ...); the
# flags are written under the older names, which compare.py uses.
NAMES = {"threshold": ("threshold", "MinimumThresholdCheck"), "p-ratio": ("p-ratio", "PPercentCheck"),
         "nk-rule": ("nk-rule", "NKCheck")}
for check, aliases in NAMES.items():
    cells = [rc for alias in aliases for rc in sdc["cells"].get(alias, [])]
    for r, c in cells:
        row = table.index[r]
        row = row if isinstance(row, tuple) else (row,)
        row_key = ["Total"] * len(row) if "All" in row else [str(v) for v in row]
        key = row_key + [
            "Total" if table.columns[c] == "All" else str(table.columns[c])
        ]
        flags.setdefault("|".join(key), []).append(check)
json.dump({"flags": flags, "load_s": t1 - t0, "crosstab_s": t2 - t1,
           "rows": [list(map(str, i if isinstance(i, tuple) else (i,))) for i in table.index],
           "cols": [str(c) for c in table.columns]}, open(sys.argv[2], "w"))
print(f"acro: load {t1 - t0:.1f} s, crosstab {t2 - t1:.1f} s")
