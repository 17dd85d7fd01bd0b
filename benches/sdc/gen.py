"""Generates the benchmark inputs (seeded): microdata with one row per person, and a finished 4-D
count table with margins. Usage: gen.py microdata OUT.csv ROWS SEED | gen.py table OUT.csv SEED"""
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv


def zipf_choice(rng, n_levels, size, s):
    weights = 1.0 / np.arange(1, n_levels + 1) ** s
    return rng.choice(n_levels, size=size, p=weights / weights.sum())


def microdata(out, rows, seed):
    rng = np.random.default_rng(seed)
    # Skewed categories so that some cells are small; heavy-tailed incomes so that some dominate.
    region = zipf_choice(rng, 11, rows, 1.2)
    age = rng.choice(10, size=rows)
    sex = rng.choice(2, size=rows)
    sector = zipf_choice(rng, 21, rows, 2.2)
    income = np.round(rng.lognormal(10.0, 1.0, size=rows), 2)
    rare = rng.random(rows) < 2e-5
    income[rare] *= 500.0
    table = pa.table({
        "person": pa.array([f"P{i:09d}" for i in rng.permutation(rows)]),
        "region": pa.array([f"R{r:02d}" for r in range(11)]).take(pa.array(region)),
        "age": pa.array([f"A{a}" for a in range(10)]).take(pa.array(age)),
        "sex": pa.array(["F", "M"]).take(pa.array(sex)),
        "sector": pa.array([f"S{s:02d}" for s in range(21)]).take(pa.array(sector)),
        "income": pa.array(income),
    })
    pacsv.write_csv(table, out)


def finished_table(out, seed):
    rng = np.random.default_rng(seed)
    sizes = [10, 8, 5, 5]  # 11 * 9 * 6 * 6 = 3,564 cells with margins
    n = int(np.prod(sizes))
    small = rng.random(n) < 0.11
    counts = np.where(small, rng.integers(1, 10, size=n), rng.integers(10, 250, size=n))
    cube = counts.reshape(sizes)
    names = ["region", "age", "sex", "sector"]
    labels = [[f"{d[0]}{i}" for i in range(k)] + ["Total"] for d, k in zip(names, sizes)]
    # Sum over every subset of dimensions.
    full = np.zeros([k + 1 for k in sizes], dtype=np.int64)
    for m in range(16):
        axes = tuple(j for j in range(4) if m >> j & 1)
        s = cube.sum(axis=axes, keepdims=True) if axes else cube
        idx = tuple(slice(sizes[j], sizes[j] + 1) if m >> j & 1 else slice(0, sizes[j]) for j in range(4))
        full[idx] = s
    with open(out, "w") as f:
        f.write(",".join(names) + ",count\n")
        for i in np.ndindex(*full.shape):
            f.write(",".join(labels[j][i[j]] for j in range(4)) + f",{full[i]}\n")


if __name__ == "__main__":
    if sys.argv[1] == "microdata":
        microdata(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        finished_table(sys.argv[2], int(sys.argv[3]))
