-- schema 2: order claims for work sharing (as SQLite's 0002). A worker (host:pid:uuid) claims an order before
-- checking and delivering it; the lease ends at claim_expires_at, measured on the server's clock so that workers
-- on machines with skewed clocks agree. NULL claimed_by: nobody holds it.

ALTER TABLE orders ADD COLUMN claimed_by TEXT COLLATE "C";
ALTER TABLE orders ADD COLUMN claim_expires_at TIMESTAMPTZ;
