-- A closed or cancelled need asks for nothing more: its gap is 0 in every view (domain.summarise,
-- docs/exports.md "The same figures in every view"). The needs that ended before this rule keep
-- the gap they had when they ended until this runs (`twinaid rebuild pledges` gives the same).
-- depends: pledges_0002_line_shares

UPDATE needs SET gap = 0 WHERE state <> 'active' AND gap <> 0;
