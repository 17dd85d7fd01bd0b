"""Compares kluis's and ACRO's threshold, dominance and p% verdicts cell by cell, on the cells both
tables hold where rows and units coincide and the cell is not empty."""
import json
import sys

kluis = json.load(open(sys.argv[1]))
acro = json.load(open(sys.argv[2]))
dims = kluis["dimensions"]
acro_rows = {tuple(r) for r in acro["rows"]}
names = {"threshold": "threshold", "dominance": "nk-rule", "p_percent": "p-ratio"}
compared = agree = 0
disagreements = []
for cell in kluis["cells"]:
    key = [cell["key"][d] for d in dims]
    row, col = key[:-1], key[-1]
    in_acro = (tuple(row) in acro_rows or all(v == "Total" for v in row))
    if not in_acro or cell["units"] == 0 or cell["rows"] != cell["units"]:
        continue
    ours = sorted(names[r] for r in cell["reasons"] if r in names)
    theirs = sorted(acro["flags"].get("|".join(key), []))
    compared += 1
    if ours == theirs:
        agree += 1
    elif len(disagreements) < 5:
        disagreements.append((key, ours, theirs))
flagged = sum(1 for c in kluis["cells"] if any(r in names for r in c["reasons"]))
print(f"verdicts: {agree}/{compared} cells agree with ACRO (threshold, nk-rule, p-ratio); "
      f"kluis flags {flagged} cells in all")
for d in disagreements:
    print("  differs:", d)
sys.exit(0 if agree == compared else 1)
