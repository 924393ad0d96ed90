-- schema 3 is another change's (order-intent claims, on its own branch). This placeholder only keeps the numbers
-- without gaps on this branch: when the two are merged, delete this file and keep the real 0003.
SELECT 1;
