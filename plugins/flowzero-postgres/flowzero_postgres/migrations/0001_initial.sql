-- flowzero order store in PostgreSQL, schema 1: the same tables and columns as the SQLite store's schema 1, so
-- the same queries and the same Order rows work on both. Text columns compare byte-wise (COLLATE "C") whatever
-- the database's locale, so listings sort exactly as in SQLite; timestamps are the same sortable UTC text.

CREATE TABLE orders (
    order_id        TEXT COLLATE "C" PRIMARY KEY,
    aoi_name        TEXT COLLATE "C" NOT NULL,
    order_type      TEXT COLLATE "C" NOT NULL DEFAULT 'PSScope',
    batch_id        TEXT COLLATE "C",
    start_date      TEXT COLLATE "C",             -- YYYY-MM-DD; NULL for basemap orders
    end_date        TEXT COLLATE "C",
    status          TEXT COLLATE "C" NOT NULL DEFAULT 'queued',
    num_bands       TEXT COLLATE "C",
    product_bundle  TEXT COLLATE "C",
    clipped         INTEGER NOT NULL DEFAULT 1,   -- boolean, 0/1 as in SQLite
    aoi_area_sqkm   DOUBLE PRECISION,
    scenes_selected INTEGER,
    scenes_found    INTEGER,
    quota_hectares  DOUBLE PRECISION,
    batch_order     INTEGER NOT NULL DEFAULT 0,   -- boolean
    mosaic_name     TEXT COLLATE "C",
    order_name      TEXT COLLATE "C",
    metadata        TEXT NOT NULL DEFAULT '{}',   -- JSON object (text, redacted before it is written)
    created_at      TEXT COLLATE "C" NOT NULL,    -- UTC, ISO 8601 with milliseconds and Z
    updated_at      TEXT COLLATE "C" NOT NULL
);

CREATE INDEX idx_orders_aoi_name ON orders (aoi_name);
CREATE INDEX idx_orders_batch_id ON orders (batch_id);
CREATE INDEX idx_orders_status ON orders (status);
CREATE INDEX idx_orders_aoi_dates ON orders (aoi_name, start_date, end_date);

CREATE TABLE order_intents (
    order_name  TEXT COLLATE "C" PRIMARY KEY,
    details     TEXT NOT NULL DEFAULT '{}',       -- JSON object: what was about to be ordered
    created_at  TEXT COLLATE "C" NOT NULL,
    order_id    TEXT COLLATE "C",                 -- set when resolved with the order Planet created
    resolved_at TEXT COLLATE "C"                  -- NULL while pending
);

CREATE INDEX idx_order_intents_pending ON order_intents (resolved_at);
