-- The canonical serialization and hash computed by Postgres match the vectors that the Python
-- client's tests check too (supabase/tests/fixtures/invoice_vectors.json, read relative to the
-- project root, where the test command runs pg_prove).
\set vectors `cat supabase/tests/fixtures/invoice_vectors.json`

begin;
select plan((select 2 * jsonb_array_length(:'vectors'::jsonb)));
-- (Canonical form v1 for the vectors with hash_version 1, v2 for the others.)

-- TEST: Postgres renders each vector's canonical text byte for byte.
select
  is(
    shopsync.invoice_canonical(
      (v.value -> 'invoice' ->> 'shop_id')::uuid,
      v.value -> 'invoice' ->> 'series',
      (v.value -> 'invoice' ->> 'number')::bigint,
      (v.value -> 'invoice' ->> 'issued_at')::timestamptz,
      v.value -> 'invoice' ->> 'kind',
      (v.value -> 'invoice' ->> 'refers_to')::uuid,
      (v.value -> 'invoice' ->> 'customer_id')::uuid,
      v.value -> 'invoice' ->> 'currency',
      (v.value -> 'invoice' ->> 'subtotal')::numeric,
      (v.value -> 'invoice' ->> 'tax')::numeric,
      (v.value -> 'invoice' ->> 'total')::numeric,
      v.value -> 'invoice' -> 'lines',
      v.value -> 'invoice' ->> 'prev_hash'
    ),
    v.value ->> 'canonical',
    'canonical text: ' || (v.value ->> 'name')
  )
from jsonb_array_elements(:'vectors'::jsonb) as v (value)
where v.value -> 'invoice' ->> 'hash_version' = '1';

-- TEST: canonical form v2 (the row as jsonb) for the v2 vectors.
select
  is(
    shopsync.invoice_canonical_v2(v.value -> 'invoice'),
    v.value ->> 'canonical',
    'canonical text v2: ' || (v.value ->> 'name')
  )
from jsonb_array_elements(:'vectors'::jsonb) as v (value)
where v.value -> 'invoice' ->> 'hash_version' = '2';

-- TEST: and the same SHA-256.
select
  is(
    shopsync.invoice_hash(v.value ->> 'canonical'),
    v.value ->> 'hash',
    'hash: ' || (v.value ->> 'name')
  )
from jsonb_array_elements(:'vectors'::jsonb) as v (value);

select * from finish();
rollback;
