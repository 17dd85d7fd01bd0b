-- Federal employees (one row per person and year) by national origin group and education level.
SELECT year, origin, education_level, count(*) AS employees
FROM person_years
WHERE employer_type = 'FEDERAL'
GROUP BY year, origin, education_level
