-- Registrations that arrive together run the registration handler itself, each in turn, in one
-- transaction (services/registry/handlers/registrations.py): the function that repeated the
-- domain's rules in SQL for them goes, with its type. What such a batch reads before its
-- handlers decide comes in one round trip (registry_batch_reads, below).
-- depends: registry_0002_api_key_uses

DROP FUNCTION IF EXISTS registry_register_organisations(registry_registration[]);
DROP TYPE IF EXISTS registry_registration;
DROP FUNCTION IF EXISTS registry_register_organisation(
    text[], text, text[], text, text, integer, timestamptz, text, uuid[], text[], integer[],
    timestamptz[], text[], text, text, text, text, text, text, text[], text[], text, text,
    integer, timestamptz, text);

-- What a batch of registrations reads before the registration handler decides each of them
-- (services/registry/handlers/registrations.py), in one round trip. First every name lock of
-- the batch, in the order given (the order a registration alone takes its own: sorted), so
-- batches and single registrations never wait on each other in a cycle. Then, in a statement
-- of its own (a fresh snapshot: what a registration that held one of the locks committed is
-- seen), the organisations one of whose names shares a key with `p_names` (through the names
-- index alone: EXECUTE plans it with the names as values, and enable_seqscan is off, so a
-- large directory is never walked; tests/registry/test_group_commit.py), and which of `p_ids`
-- the registry holds. Reads only: every decision is the handler's.
CREATE OR REPLACE FUNCTION registry_batch_reads(p_locks text[], p_names text[], p_ids text[])
RETURNS TABLE (organisation_id text, country text, name_skeletons text[], taken boolean)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    lock_key text;
BEGIN
    FOREACH lock_key IN ARRAY p_locks LOOP
        PERFORM pg_advisory_xact_lock(hashtext(lock_key));
    END LOOP;
    RETURN QUERY EXECUTE
        'WITH named AS MATERIALIZED ('
        '  SELECT o.organisation_id, o.country, o.name_skeletons FROM organisations o'
        '  WHERE o.name_skeletons && $1 OFFSET 0'
        ') SELECT n.organisation_id, n.country, n.name_skeletons, false FROM named n'
        ' UNION ALL SELECT o.organisation_id, o.country, NULL::text[], true FROM organisations o'
        ' WHERE o.organisation_id = ANY($2)'
        USING p_names, p_ids;
END $$;
