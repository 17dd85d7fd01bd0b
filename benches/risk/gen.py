"""Generates the risk benchmark's microdata and generalisation hierarchies.

1,000,000 person-years (250,000 persons x 4 years) with 8 quasi-identifiers at realistic
cardinalities and skews (sex 2, age class 10, region 5, nationality class 30, origin 13,
education 3, statuut 4, NACE section 21), a sensitive wage band, and one hierarchy CSV per
quasi-identifier (header = level names, one row per value). Seeded: same seed, same files.
"""

import argparse
import os

import numpy as np
import pandas as pd


def zipf_weights(n, s):
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.rows

    sex = ["M", "F"]
    ages = [f"{a}-{a + 4}" for a in range(15, 65, 5)]
    age_w = np.array([4, 8, 11, 12, 12, 12, 12, 11, 10, 8], float)
    regions = ["Brussel", "Antwerpen", "Oost-Vlaanderen", "Henegouwen", "Luik"]
    region_w = np.array([11, 28, 24, 20, 17], float)
    nationalities = [f"N{i:02d}" for i in range(1, 31)]
    origins = [f"O{i:02d}" for i in range(1, 14)]
    education = ["low", "middle", "high"]
    statuut = ["arbeider", "bediende", "ambtenaar", "zelfstandige"]
    nace = list("ABCDEFGHIJKLMNOPQRSTU")
    nace_w = np.array([1, 0.2, 12, 0.6, 0.8, 7, 14, 6, 4, 4, 3, 1, 6, 9, 8, 9, 13, 1.5, 2.5, 0.3, 0.1])
    wages = [f"W{i:02d}" for i in range(1, 13)]

    def pick(values, weights):
        weights = np.asarray(weights, float)
        return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=weights / weights.sum())]

    df = pd.DataFrame(
        {
            "person": np.arange(n, dtype=np.int64) // 4,
            "year": 2019 + np.arange(n, dtype=np.int64) % 4,
            "sex": pick(sex, [51, 49]),
            "age_class": pick(ages, age_w),
            "region": pick(regions, region_w),
            "nationality": pick(nationalities, zipf_weights(30, 1.6)),
            "origin": pick(origins, zipf_weights(13, 1.2)),
            "education": pick(education, [30, 40, 30]),
            "statuut": pick(statuut, [35, 45, 12, 8]),
            "nace_section": pick(nace, nace_w),
            "wage_band": pick(wages, zipf_weights(12, 0.5)),
        }
    )
    os.makedirs(args.out, exist_ok=True)
    df.to_parquet(os.path.join(args.out, "data.parquet"), index=False)

    h = os.path.join(args.out, "hierarchies")
    os.makedirs(h, exist_ok=True)

    def write(column, header, rows):
        with open(os.path.join(h, f"{column}.csv"), "w") as f:
            f.write(",".join(header) + "\n")
            for r in rows:
                f.write(",".join(r) + "\n")

    write("sex", ["sex", "*"], [[s, "*"] for s in sex])
    write("age_class", ["age_class_5", "age_class_10", "*"],
          [[a, f"{int(a[:2]) // 10 * 10}-{int(a[:2]) // 10 * 10 + 9}", "*"] for a in ages])
    gewest = {"Brussel": "BRU", "Antwerpen": "VLA", "Oost-Vlaanderen": "VLA", "Henegouwen": "WAL", "Luik": "WAL"}
    write("region", ["province", "gewest", "*"], [[r, gewest[r], "*"] for r in regions])
    continent = lambda i: "BE" if i == 1 else "EU" if i <= 10 else "EUR" if i <= 15 else "AFR" if i <= 20 else "ASI" if i <= 25 else "AMO"
    write("nationality", ["nationality_class", "continent", "*"],
          [[v, continent(i + 1), "*"] for i, v in enumerate(nationalities)])
    write("origin", ["origin", "origin_group", "*"], [[v, f"G{i // 4}", "*"] for i, v in enumerate(origins)])
    write("education", ["education", "*"], [[e, "*"] for e in education])
    write("statuut", ["statuut", "employment", "*"],
          [[s, "zelfstandig" if s == "zelfstandige" else "loontrekkend", "*"] for s in statuut])
    group = {**dict.fromkeys("AB", "primary"), **dict.fromkeys("CDEF", "industry"), **dict.fromkeys("GHI", "trade"),
             **dict.fromkeys("JKLMN", "services"), **dict.fromkeys("OPQ", "public"), **dict.fromkeys("RSTU", "other")}
    write("nace_section", ["nace_section", "nace_group", "*"], [[s, group[s], "*"] for s in nace])


if __name__ == "__main__":
    main()
