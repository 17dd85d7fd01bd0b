"""Python baselines for the risk benchmark: pandas groupby().size() and pycanon.

Prints one JSON object with the figures and the seconds each call took.
"""

import json
import sys
import time

import pandas as pd
from pycanon import anonymity

data, l_data, qi, small_qi, sensitive = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(","), sys.argv[5]
out = {}

t = time.perf_counter()
df = pd.read_parquet(data, columns=qi + [sensitive])
out["read_seconds"] = time.perf_counter() - t

t = time.perf_counter()
sizes = df.groupby(qi, dropna=False, observed=True).size()
out["pandas_seconds"] = time.perf_counter() - t
out["pandas_k_min"] = int(sizes.min())
out["pandas_classes"] = int(len(sizes))

t = time.perf_counter()
out["pycanon_k"] = int(anonymity.k_anonymity(df, qi))
out["pycanon_k_seconds"] = time.perf_counter() - t

# l-diversity over few quasi-identifiers on the full file (large classes, l > 1)...
t = time.perf_counter()
out["pycanon_l_small_qi"] = int(anonymity.l_diversity(df, small_qi, [sensitive]))
out["pycanon_entropy_l_small_qi"] = int(anonymity.entropy_l_diversity(df, small_qi, [sensitive]))
out["pycanon_l_small_qi_seconds"] = time.perf_counter() - t

# ...and over all eight on a subsample: pycanon loops over classes in Python.
small = pd.read_parquet(l_data, columns=qi + [sensitive])
t = time.perf_counter()
out["pycanon_l_all_qi"] = int(anonymity.l_diversity(small, qi, [sensitive]))
out["pycanon_entropy_l_all_qi"] = int(anonymity.entropy_l_diversity(small, qi, [sensitive]))
out["pycanon_k_subsample"] = int(anonymity.k_anonymity(small, qi))
out["pycanon_l_all_qi_seconds"] = time.perf_counter() - t
print(json.dumps(out))
