"""The pandas baseline of `kluis extract`: the same selection, the same HMAC pseudonymisation of
the whole qualifying population (Python's hmac), the same stratified sample, and the sampled
person-years written as Parquet and CSV. It codes no variable (kluis also derives origin and
migration background and coarsens every column), so it does less work than kluis.

    python baseline.py WAREHOUSE OUT EMPLOYER_TYPES_CSV AUTHORISATION_TOML SEED
"""
import hashlib
import hmac
import os
import sys
import time
import tomllib

import numpy as np
import pandas as pd

warehouse, out, employer_types_csv, authorisation_toml, seed = sys.argv[1:6]
started = time.perf_counter()
with open(authorisation_toml, "rb") as f:
    authorisation = tomllib.load(f)
population = authorisation["population"]
strata = authorisation["strata"]

employer_types = pd.read_csv(employer_types_csv, comment="#")
stratum_of_type = {}
for index, stratum in reversed(list(enumerate(strata))):
    for code in employer_types.loc[employer_types.employer_group.isin(stratum["employer_groups"]), "code"]:
        stratum_of_type[int(code)] = index

persons = pd.read_parquet(os.path.join(warehouse, "persons.parquet"))
persons["birth_year"] = pd.to_datetime(persons["birth_date"]).dt.year
years = range(population["first_year"], population["last_year"] + 1)
parts = [
    pd.read_parquet(os.path.join(warehouse, "person_years", f"year={y}"))
    for y in years
]
person_years = pd.concat(parts, ignore_index=True)
if "year" not in person_years:
    raise SystemExit("person_years lacks the year column")
person_years["year"] = person_years["year"].astype("int32")
read = time.perf_counter()

# Selection: authorised years, ages, statuut and employer types.
birth_year = persons.set_index("insz")["birth_year"]
age = person_years["year"] - person_years["insz"].map(birth_year)
stratum = person_years["employer_type"].map(stratum_of_type)
qualifying = person_years[
    age.between(population["min_age"], population["max_age"])
    & person_years["statuut"].isin(population["statuut"])
    & stratum.notna()
].assign(stratum=stratum.dropna().astype("int8"))
# A person's stratum is the first (lowest index) among their qualifying years.
person_stratum = qualifying.groupby("insz")["stratum"].min()
selected = time.perf_counter()

# Pseudonyms: HMAC-SHA-256 of the 11-digit INSZ under a random project key, numbered 1..N in
# digest order over the whole qualifying population.
key = os.urandom(32)
digests = [
    hmac.new(key, f"{insz:011d}".encode(), hashlib.sha256).digest()
    for insz in person_stratum.index
]
order = np.argsort(np.array(digests, dtype="S32"), kind="stable")
pseudonym = np.empty(len(order), dtype=np.int64)
pseudonym[order] = np.arange(1, len(order) + 1)
pseudonyms = pd.Series(pseudonym, index=person_stratum.index)
hashed = time.perf_counter()

# Stratified simple random sample of persons without replacement.
rng = np.random.default_rng(int(seed))
sampled = []
for index, stratum in enumerate(strata):
    members = person_stratum.index[person_stratum.to_numpy() == index].to_numpy()
    size = min(stratum["sample_size"], len(members))
    sampled.append(rng.choice(members, size=size, replace=False))
sampled = np.concatenate(sampled)
rows = qualifying[qualifying["insz"].isin(sampled)].merge(
    persons.drop(columns=["birth_year"]), on="insz"
)
rows.insert(0, "pseudonym", rows["insz"].map(pseudonyms))
rows = rows.drop(columns=["insz", "employer_id"]).sort_values(["pseudonym", "year"])
os.makedirs(out, exist_ok=True)
rows.to_parquet(os.path.join(out, "person_years.parquet"), index=False)
rows.to_csv(os.path.join(out, "person_years.csv"), index=False)
done = time.perf_counter()

print(
    f"pandas: {len(person_years):,} person-years read, {len(qualifying):,} qualify, "
    f"{len(person_stratum):,} persons pseudonymised, {len(sampled):,} sampled, {len(rows):,} rows written"
)
print(
    f"pandas phases: read {read - started:.1f}s, select {selected - read:.1f}s, "
    f"hmac {hashed - selected:.1f}s, sample+write {done - hashed:.1f}s"
)
