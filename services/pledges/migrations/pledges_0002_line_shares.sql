-- Each pledge line keeps its part of its need's figures, so that a pledge event adds the
-- difference to the need's sums instead of summing every line of the need again (issue 19).
-- depends: pledges_0001_baseline

-- The line's part of its need's figures (domain.share), in the need's unit or currency: a change
-- to the line adds the difference to the need's pledged, committed and delivered, which are
-- never summed again over every line.
ALTER TABLE pledge_lines ADD COLUMN IF NOT EXISTS share_pledged numeric NOT NULL DEFAULT 0;
ALTER TABLE pledge_lines ADD COLUMN IF NOT EXISTS share_committed numeric NOT NULL DEFAULT 0;
ALTER TABLE pledge_lines ADD COLUMN IF NOT EXISTS share_delivered numeric NOT NULL DEFAULT 0;

-- The lines already there, as services/pledges/domain/coverage.py `share` counts them (once, at
-- the upgrade; `twinaid rebuild pledges` gives the same): in the need's unit (kg and tonnes
-- convert, to the places Python's Decimal gives), a withdrawn pledge's line only what arrived,
-- the size committed once binding.
-- The needs' sums are those rows already hold (the same figures, summed over every line).
WITH sized AS (
    SELECT l.line_key, p.status,
           CASE WHEN l.unit IS NULL THEN l.amount::numeric
                WHEN l.unit = n.unit THEN l.quantity
                WHEN l.unit = 'tonnes' AND n.unit = 'kg' THEN l.quantity * 1000
                WHEN l.unit = 'kg' AND n.unit = 'tonnes'
                THEN round(l.quantity * 0.001,
                           greatest(scale(l.quantity), scale(trim_scale(l.quantity * 0.001))))
                ELSE l.quantity END AS size,
           CASE WHEN l.unit IS NULL THEN l.received::numeric
                WHEN l.unit = n.unit THEN l.delivered
                WHEN l.unit = 'tonnes' AND n.unit = 'kg' THEN l.delivered * 1000
                WHEN l.unit = 'kg' AND n.unit = 'tonnes'
                THEN round(l.delivered * 0.001,
                           greatest(scale(l.delivered), scale(trim_scale(l.delivered * 0.001))))
                ELSE l.delivered END AS arrived
    FROM pledge_lines l
    JOIN pledges p USING (pledge_id)
    JOIN needs n ON n.need_id = l.need_id
)
UPDATE pledge_lines l SET
    share_pledged = CASE WHEN s.status = 'withdrawn' THEN s.arrived ELSE s.size END,
    share_committed = CASE WHEN s.status = 'withdrawn' THEN s.arrived
                           WHEN s.status IN ('committed', 'partly_fulfilled', 'fulfilled')
                           THEN s.size ELSE 0 END,
    share_delivered = s.arrived
FROM sized s
WHERE l.line_key = s.line_key;
