-- Threat closed: an unauthenticated caller (the anon key is public) reading or writing anything,
-- or calling a sync RPC. anon may only call the liveness probe.
begin;
select plan(8);

-- TEST: the only public function anon may execute is health()
select results_eq(
  $$
    select p.proname::text collate "C" from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
    where n.nspname in ('public', 'graphql_public') and has_function_privilege('anon', p.oid, 'execute')
    order by 1
  $$,
  $$values ('health' collate "C")$$,
  'anon can execute health() only'
);

-- TEST: anon holds no table privilege in an exposed schema
select is_empty(
  $$
    select c.oid::regclass::text
    from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
    where n.nspname in ('public', 'graphql_public') and c.relkind in ('r', 'v', 'm', 'p', 'f')
      and has_table_privilege('anon', c.oid, 'select, insert, update, delete, truncate, references, trigger')
  $$,
  'anon has no privilege on any table in an exposed schema'
);

-- TEST: nor on any table of the private schema (anon may use the schema only to read the schema
-- version through health(); which functions it may execute is checked by
-- only_the_entry_points_of_shopsync_are_executable_by_api_roles)
select is_empty(
  $$
    select c.oid from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
    where n.nspname = 'shopsync'
      and has_table_privilege('anon', c.oid, 'select, insert, update, delete, truncate, references, trigger')
  $$,
  'anon has no privilege on any table in schema shopsync'
);

call tests.authenticate_as_anon();

select is((public.health() ->> 'ok')::boolean, true, 'anon can call health()');
select throws_ok('select count(*) from public.customers', '42501', null, 'anon cannot select customers');
select throws_ok('select count(*) from public.shops', '42501', null, 'anon cannot select shops');
select throws_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-0000000000f1', 'till')$$,
  '42501', null, 'anon cannot register a device'
);
select throws_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-0000000000f1', 0)$$,
  '42501', null, 'anon cannot pull'
);

select * from finish();
rollback;
