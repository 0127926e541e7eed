-- Where each organisation is (the registry's `coordinates`, issue 23): the consumers' copy
-- keeps latitude and longitude. Rows already held stay NULL until the registry sends a
-- correction of their coordinates (the registration that carried them was consumed before).
-- depends: directory_0001_baseline

ALTER TABLE directory ADD COLUMN IF NOT EXISTS lat double precision;
ALTER TABLE directory ADD COLUMN IF NOT EXISTS lon double precision;
