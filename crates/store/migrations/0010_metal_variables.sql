-- Bare-metal zone: the administrator's per-system variables for installer
-- answer-file templates (a JSON object of strings owned by mallee-metal).
ALTER TABLE metal_systems ADD COLUMN variables TEXT NOT NULL DEFAULT '{}';
