-- flowzero order store, schema 2: order claims for work sharing. A worker (host:pid:uuid) claims an order before
-- checking and delivering it; the claim lapses at claim_expires_at (UTC text like created_at), so an order held
-- by a worker that died is taken over by another. NULL claimed_by: nobody holds it.

ALTER TABLE orders ADD COLUMN claimed_by TEXT;
ALTER TABLE orders ADD COLUMN claim_expires_at TEXT;
