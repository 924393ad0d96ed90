-- schema 3: an order intent is a claim (as SQLite's 0003). The run about to POST an order takes its intent
-- (owner host:pid:random) until lease_expires_at, on the server's clock, renewed while it waits for Planet's
-- answer; no other run resolves a pending intent whose owner is alive or whose lease runs. NULL owner: free.

ALTER TABLE order_intents ADD COLUMN owner TEXT COLLATE "C";
ALTER TABLE order_intents ADD COLUMN lease_expires_at TIMESTAMPTZ;

-- And a delivery claim says where its holder delivers, so a run delivering the same order elsewhere can say that
-- nothing was delivered to its own destination (NULL: not said).
ALTER TABLE orders ADD COLUMN claim_destination TEXT COLLATE "C";
