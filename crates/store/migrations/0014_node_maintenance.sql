-- A node an administrator disabled (`mallee admin node disable`) keeps its
-- instances but receives no new ones until it is enabled again. Heartbeats
-- never change it.
ALTER TABLE nodes ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
