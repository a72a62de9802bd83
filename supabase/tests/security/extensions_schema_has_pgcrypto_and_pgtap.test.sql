-- Extensions live in the schema extensions, as on Supabase.
begin;
select plan(3);

-- TEST: pgcrypto and pgtap are installed in schema extensions.
select is(
  (
    select n.nspname::text from pg_catalog.pg_extension as e
    inner join pg_catalog.pg_namespace as n on e.extnamespace = n.oid
    where e.extname = 'pgcrypto'
  ),
  'extensions',
  'pgcrypto is in extensions'
);
select is(
  (
    select n.nspname::text from pg_catalog.pg_extension as e
    inner join pg_catalog.pg_namespace as n on e.extnamespace = n.oid
    where e.extname = 'pgtap'
  ),
  'extensions',
  'pgtap is in extensions'
);

-- TEST: the API roles may use the extensions schema (gen_random_uuid and digest resolve for them).
select ok(
  pg_catalog.has_schema_privilege('authenticated', 'extensions', 'usage'),
  'authenticated may use schema extensions'
);

select * from finish();
rollback;
