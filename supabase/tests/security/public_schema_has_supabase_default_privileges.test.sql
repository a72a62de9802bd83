-- Objects the postgres role creates in public are granted to the API roles, as on Supabase
-- (row level security is what protects rows, not missing grants).
begin;
select plan(5);

create table public.pgtap_probe (id bigint primary key);
create function public.pgtap_probe_fn() returns integer language sql as $$ select 1 $$;

-- TEST: a new table in public is granted to anon, authenticated and service_role.
select ok(pg_catalog.has_table_privilege('anon', 'public.pgtap_probe', 'select'), 'anon may select a new table');
select ok(
  pg_catalog.has_table_privilege('authenticated', 'public.pgtap_probe', 'insert'),
  'authenticated may insert into a new table'
);
select ok(
  pg_catalog.has_table_privilege('service_role', 'public.pgtap_probe', 'delete'),
  'service_role may delete from a new table'
);

-- TEST: a new function in public is executable by the API roles.
select ok(
  pg_catalog.has_function_privilege('authenticated', 'public.pgtap_probe_fn()', 'execute'),
  'authenticated may execute a new function'
);

-- TEST: the API roles may use schema public.
select ok(pg_catalog.has_schema_privilege('anon', 'public', 'usage'), 'anon may use schema public');

select * from finish();
rollback;
