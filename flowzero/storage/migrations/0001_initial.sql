-- flowzero order store, schema 1: the orders log and the order intents that make "never order twice" hold
-- across crashes (an intent is written before an order is POSTed and resolved once its id is known).

CREATE TABLE orders (
    order_id        TEXT PRIMARY KEY,
    aoi_name        TEXT NOT NULL,
    order_type      TEXT NOT NULL DEFAULT 'PSScope',
    batch_id        TEXT,
    start_date      TEXT,                      -- YYYY-MM-DD; NULL for basemap orders
    end_date        TEXT,
    status          TEXT NOT NULL DEFAULT 'queued',
    num_bands       TEXT,
    product_bundle  TEXT,
    clipped         INTEGER NOT NULL DEFAULT 1,  -- boolean
    aoi_area_sqkm   REAL,
    scenes_selected INTEGER,
    scenes_found    INTEGER,
    quota_hectares  REAL,
    batch_order     INTEGER NOT NULL DEFAULT 0,  -- boolean
    mosaic_name     TEXT,
    order_name      TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}',  -- JSON object
    created_at      TEXT NOT NULL,             -- UTC, ISO 8601 with milliseconds and Z
    updated_at      TEXT NOT NULL
);

CREATE INDEX idx_orders_aoi_name ON orders (aoi_name);
CREATE INDEX idx_orders_batch_id ON orders (batch_id);
CREATE INDEX idx_orders_status ON orders (status);
CREATE INDEX idx_orders_aoi_dates ON orders (aoi_name, start_date, end_date);

CREATE TABLE order_intents (
    order_name  TEXT PRIMARY KEY,
    details     TEXT NOT NULL DEFAULT '{}',    -- JSON object: what was about to be ordered
    created_at  TEXT NOT NULL,
    order_id    TEXT,                          -- set when resolved with the order Planet created
    resolved_at TEXT                           -- NULL while pending
);

CREATE INDEX idx_order_intents_pending ON order_intents (resolved_at);
