"""Checks kluis's figures against pycanon's and pandas's and prints the summary. Exits 1 on any mismatch."""

import json
import math
import sys

d = json.load(open(sys.argv[1]))
k_full, k_small_qi, k_sub, enforce, py = (d[x] for x in ("full", "small_qi", "subsample", "enforce", "python"))
s = sys.argv[2]
checks = [
    ("k (8 QIs, full file)", k_full["k_min"], py["pycanon_k"]),
    ("k vs pandas groupby", k_full["k_min"], py["pandas_k_min"]),
    ("classes vs pandas groupby", k_full["classes"], py["pandas_classes"]),
    ("l distinct (few QIs, full file)", k_small_qi["l_diversity"][s]["distinct"], py["pycanon_l_small_qi"]),
    ("entropy l (few QIs, full file)", math.floor(k_small_qi["l_diversity"][s]["entropy"] + 1e-9), py["pycanon_entropy_l_small_qi"]),
    ("k (8 QIs, subsample)", k_sub["k_min"], py["pycanon_k_subsample"]),
    ("l distinct (8 QIs, subsample)", k_sub["l_diversity"][s]["distinct"], py["pycanon_l_all_qi"]),
    ("entropy l (8 QIs, subsample)", math.floor(k_sub["l_diversity"][s]["entropy"] + 1e-9), py["pycanon_entropy_l_all_qi"]),
]
ok = True
for name, ours, theirs in checks:
    flag = "ok" if ours == theirs else "MISMATCH"
    ok &= ours == theirs
    print(f"  {name:36s} kluis {ours!s:>8}  baseline {theirs!s:>8}  {flag}")
print(f"  entropy l (few QIs) kluis exact value: {k_small_qi['l_diversity'][s]['entropy']:.6f}")
r = enforce["recoding"]
print(f"  enforce k: levels {r['level_names']}, loss {r['loss']:.4f}, {r['nodes_evaluated']}/{r['lattice_nodes']} nodes evaluated,"
      f" {enforce['suppression']['cells']} cells suppressed, k reached: {enforce['suppression']['k_reached']}")
sys.exit(0 if ok else 1)
