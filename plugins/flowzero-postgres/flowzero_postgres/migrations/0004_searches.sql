-- schema 4: recorded searches (as SQLite's 0004), so the coverage calendar tells "no imagery" from "never asked".
-- Independent of schema 3.

CREATE TABLE searches (
    search_id        TEXT COLLATE "C" PRIMARY KEY,
    aoi_name         TEXT COLLATE "C" NOT NULL,
    batch_id         TEXT COLLATE "C",
    start_date       TEXT COLLATE "C" NOT NULL,
    end_date         TEXT COLLATE "C" NOT NULL,
    cadence          TEXT COLLATE "C" NOT NULL,
    product_bundle   TEXT COLLATE "C",
    min_coverage_pct DOUBLE PRECISION,
    found            INTEGER NOT NULL,
    eligible         INTEGER NOT NULL,
    selected         INTEGER NOT NULL,
    details          TEXT NOT NULL DEFAULT '{}',
    searched_at      TEXT COLLATE "C" NOT NULL
);

CREATE INDEX idx_searches_aoi_dates ON searches (aoi_name, start_date, end_date);
CREATE INDEX idx_searches_batch_id ON searches (batch_id);
