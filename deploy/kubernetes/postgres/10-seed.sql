-- The lab's seed data, as TechEmpower's framework benchmarks define it: a `world` table of
-- 10,000 rows with a random number 1..10000 each, and the 12-row `fortune` table.
-- Idempotent (safe to apply again). Applied by `loadlab.pgcluster.seed` natively and by the
-- postgres image's /docker-entrypoint-initdb.d in compose: this file is the one copy.
BEGIN;
SELECT pg_advisory_xact_lock(7010);  -- two seeders at once wait for each other

CREATE TABLE IF NOT EXISTS world (
    id integer NOT NULL PRIMARY KEY,
    randomnumber integer NOT NULL DEFAULT 0
);
INSERT INTO world (id, randomnumber)
SELECT i, floor(random() * 10000 + 1)::integer FROM generate_series(1, 10000) AS i
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS fortune (
    id integer NOT NULL PRIMARY KEY,
    message varchar(2048) NOT NULL
);
INSERT INTO fortune (id, message) VALUES
    (1, 'fortune: No such file or directory'),
    (2, 'A computer scientist is someone who fixes things that aren''t broken.'),
    (3, 'After enough decimal places, nobody gives a damn.'),
    (4, 'A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1'),
    (5, 'A computer program does what you tell it to do, not what you want it to do.'),
    (6, 'Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen'),
    (7, 'Any program that runs right is obsolete.'),
    (8, 'A list is only as strong as its weakest link. — Donald Knuth'),
    (9, 'Feature: A bug with seniority.'),
    (10, 'Computers make very fast, very accurate mistakes.'),
    (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
    (12, 'フレームワークのベンチマーク')
ON CONFLICT (id) DO NOTHING;

ANALYZE world;
ANALYZE fortune;
COMMIT;
