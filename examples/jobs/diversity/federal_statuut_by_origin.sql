-- Federal employees (one row per person and year) by national origin group and statuut.
SELECT year, origin, statuut, count(*) AS employees
FROM person_years
WHERE employer_type = 'FEDERAL'
GROUP BY year, origin, statuut
