-- Bare-metal zone: disk wipe policies applied when a system is given back
-- to the pool ('none' or 'zero', owned by mallee-metal). A system's own
-- policy (NULL: none set) overrides its group's (NULL: none set = 'none').
ALTER TABLE metal_groups ADD COLUMN wipe TEXT;
ALTER TABLE metal_systems ADD COLUMN wipe TEXT;
