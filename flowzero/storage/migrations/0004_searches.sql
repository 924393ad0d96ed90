-- flowzero order store, schema 4: every search that led (or could have led) to an order, so the coverage calendar
-- tells "Planet has no imagery there" (searched, nothing covered enough of the AOI) from "never asked". One row
-- per search of one AOI and date range; ``details`` keeps, per day, how many scenes were found and eligible and
-- the best coverage reached. Independent of schema 3.

CREATE TABLE searches (
    search_id        TEXT PRIMARY KEY,          -- uuid
    aoi_name         TEXT NOT NULL,
    batch_id         TEXT,
    start_date       TEXT NOT NULL,             -- YYYY-MM-DD
    end_date         TEXT NOT NULL,
    cadence          TEXT NOT NULL,             -- daily | weekly | monthly
    product_bundle   TEXT,
    min_coverage_pct REAL,
    found            INTEGER NOT NULL,          -- scenes the search returned
    eligible         INTEGER NOT NULL,          -- of which covered at least min_coverage_pct of the AOI
    selected         INTEGER NOT NULL,          -- the best one per cadence period
    details          TEXT NOT NULL DEFAULT '{}', -- JSON object: {"days": {"YYYY-MM-DD": {found, eligible, best_coverage_pct}}}
    searched_at      TEXT NOT NULL              -- UTC, ISO 8601 with milliseconds and Z
);

CREATE INDEX idx_searches_aoi_dates ON searches (aoi_name, start_date, end_date);
CREATE INDEX idx_searches_batch_id ON searches (batch_id);
