-- Exports of a pool's recorded responses (`GET /v1/pools/{id}/responses`)
-- and the model-expected scores item statistics compare with.
-- Each export has its own random key: the person ids it writes are
-- HMAC-SHA256(key, test id), the same on every page of that export and
-- unlinkable across exports. The key never leaves the server; the row also
-- records who exported what, and when.
CREATE TABLE response_exports (
    id          uuid PRIMARY KEY,
    pool_id     uuid NOT NULL REFERENCES item_pools (id) ON DELETE CASCADE,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    key         bytea NOT NULL CHECK (length(key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A pool's tests in id order: an export walks them (and each one's responses
-- by seq, on test_responses' UNIQUE (session_id, seq)) from its cursor, so a
-- page costs the same wherever it starts and whatever other pools hold.
CREATE INDEX test_sessions_pool ON test_sessions (pool_id, id);

-- The mean and variance of an item's score at θ under its model: what item
-- statistics compare observed scores with (drift). `model` NULL is a
-- dichotomous (4PL) item, P = c + (d − c) / (1 + e^(−a(θ − b))); `grm`:
-- E X = Σ_k s_k and E X² = Σ_k (2k − 1) s_k, s_k = P(X ≥ k); `gpcm`/`pcm`:
-- P(X = k) ∝ exp Σ_{v ≤ k} a(θ − b_v). Exponents are clamped, so no θ or
-- parameter raises PostgreSQL's overflow or underflow errors (a float8 product
-- that underflows is an error there, hence the guarded square).
CREATE FUNCTION item_moments(model text, a float8, b float8, c float8, d float8,
                             t float8[], theta float8, OUT mean float8, OUT var float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m int := coalesce(cardinality(t), 0);
    p float8;
    s float8;
    z float8 := 0;
    zmax float8 := 0;
    total float8 := 0;
    ex2 float8 := 0;
    zs float8[] := ARRAY[0::float8];
BEGIN
    IF model IS NULL OR model NOT IN ('grm', 'gpcm', 'pcm') THEN
        p := c + (d - c) / (1 + exp(least(700, greatest(-700, -a * (theta - b)))));
        -- p (1 − p) cannot underflow: 1 − p is near 1 when p is tiny.
        mean := p;
        var := p * (1 - p);
        RETURN;
    END IF;
    mean := 0;
    IF model = 'grm' THEN
        FOR k IN 1..m LOOP
            s := 1 / (1 + exp(least(700, greatest(-700, -a * (theta - t[k])))));
            mean := mean + s;
            ex2 := ex2 + (2 * k - 1) * s;
        END LOOP;
        var := greatest(0, ex2 - CASE WHEN mean < 1e-150 THEN 0 ELSE mean * mean END);
        RETURN;
    END IF;
    FOR k IN 1..m LOOP
        z := z + a * (theta - t[k]);
        zs := zs || z;
        zmax := greatest(zmax, z);
    END LOOP;
    FOR k IN 0..m LOOP
        p := exp(greatest(-700, zs[k + 1] - zmax));
        total := total + p;
        mean := mean + k * p;
        ex2 := ex2 + k * k * p;
    END LOOP;
    mean := mean / total;
    var := greatest(0, ex2 / total - CASE WHEN mean < 1e-150 THEN 0 ELSE mean * mean END);
END
$$;
