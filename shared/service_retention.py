"""The retention rule of a service whose persons are named by records that end (pledges' needs
and pledges, shipments' convoys): the query its worker runs (shared/worker.py, `retention_due`).

A person is due once they are recorded somewhere (privacy_occurrences) and every record naming
them ended before the cut-off. A record still running, or one the read models do not know,
keeps its people. $1: the cut-off instant (now - retention), $2: how many at most.
"""

from __future__ import annotations


def due_once_ended(joins: str, still_held: str) -> str:
    """The query of the subjects (not erased) whose records all ended before $1: `joins` brings
    the records that an occurrence `o` names (LEFT JOINs on `o.stream_id`), `still_held` is true
    of an occurrence whose record keeps the person."""
    return f"""
SELECT s.subject_id FROM privacy_subjects s
WHERE s.erased_at IS NULL AND s.last_recorded_at < $1
  AND EXISTS (SELECT 1 FROM privacy_occurrences o WHERE o.subject_id = s.subject_id)
  AND NOT EXISTS (
      SELECT 1 FROM privacy_occurrences o
      {joins}
      WHERE o.subject_id = s.subject_id
        AND {still_held})
ORDER BY s.last_recorded_at, s.subject_id
LIMIT $2
"""
