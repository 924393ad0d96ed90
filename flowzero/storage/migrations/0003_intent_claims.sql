-- flowzero order store, schema 3: an order intent is a claim. The run about to POST an order takes its intent
-- for itself (owner host:pid:random) until lease_expires_at (UTC text like created_at), renewed while it waits
-- for Planet's answer; no other run resolves a pending intent whose owner is alive or whose lease runs.
-- NULL owner (intents written before schema 3): nobody holds it, any run may reconcile it.

ALTER TABLE order_intents ADD COLUMN owner TEXT;
ALTER TABLE order_intents ADD COLUMN lease_expires_at TEXT;

-- And a delivery claim says where its holder delivers, so a run delivering the same order elsewhere can say that
-- nothing was delivered to its own destination (NULL: not said).
ALTER TABLE orders ADD COLUMN claim_destination TEXT;
