-- Road entries looked up by id (issue 19: the convoy's state keeps no list of its entries).
-- depends: shipments_0001_baseline

-- a re-sent road entry is looked up by its id (handlers.recorded_entries): the convoy's state
-- keeps no list of its entries
CREATE INDEX IF NOT EXISTS convoy_timeline_entry ON convoy_timeline (convoy_id, entry_id);
