"""Baseline for benches/enclave: the benchmark job's two tables with pandas + ACRO on a Parquet
export of the same full-population view kluis runs on.

    python baseline.py VIEW.parquet

ACRO (https://pypi.org/project/acro/) is the SACRO project's output checker for pandas: with
suppress=True it applies its threshold, dominance and p% rules to each table and suppresses.
Its rules count rows, not persons: in the count table (one row per person and year) that is the
same; in the mean table it counts person-years.
"""

import sys
import time

import pyarrow.parquet as pq

t0 = time.time()
columns = ["year", "region", "sex", "age", "registration_date"]
df = pq.read_table(sys.argv[1], columns=columns).to_pandas()
t_read = time.time() - t0

from acro import ACRO  # noqa: E402  (imported after reading so its start-up is not in t_read)

acro = ACRO(suppress=True)
t1 = time.time()
count = acro.crosstab([df.year, df.region, df.sex], df.age, margins=True)
t_count = time.time() - t1
t2 = time.time()
df["years_registered"] = df.year - df.registration_date
mean = acro.pivot_table(
    df,
    index=["region", "sex"],
    columns="age",
    values="years_registered",
    aggfunc="mean",
    margins=True,
)
t_mean = time.time() - t2
print(f"pandas read {len(df)} person-years in {t_read:.1f} s")
print(f"ACRO crosstab (4-D count, margins) {count.shape} in {t_count:.1f} s")
print(f"ACRO pivot_table (3-D mean, margins) {mean.shape} in {t_mean:.1f} s")
suppressed = int(count.isna().sum().sum()) + int(mean.isna().sum().sum())
print(f"ACRO withheld {suppressed} cells")
