-- Share of employees of foreign origin (any national origin group other than Belgian), among
-- those whose origin is known, by employer group, year, sex and five-year age class.
SELECT year, employer_type, sex, age,
       avg(CASE WHEN origin = 'BE' THEN 0.0 ELSE 1.0 END) AS foreign_origin_share
FROM person_years
WHERE origin NOT IN ('BE_UNDETERMINED', 'UNKNOWN')
GROUP BY year, employer_type, sex, age
