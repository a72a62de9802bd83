-- Threat closed: a security definer function callable through the API (it would run as its owner
-- and skip RLS), or one whose search_path lets a caller shadow the objects it uses.
begin;
select plan(4);

-- TEST: no security definer function in an exposed schema
select is_empty(
  $$
    select p.oid::regprocedure::text
    from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
    where n.nspname in ('public', 'graphql_public') and p.prosecdef
  $$,
  'public and graphql_public hold no security definer function'
);

-- TEST: every security definer function of ours pins search_path to ''
select is_empty(
  $$
    select p.oid::regprocedure::text
    from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
    where n.nspname in ('public', 'shopsync') and p.prosecdef
      and not coalesce('search_path=""' = any (p.proconfig), false)
  $$,
  'every security definer function sets search_path = '''''
);

-- TEST: the tenancy helpers are security definer (they must read shop_members under RLS)
select ok(
  (
    select bool_and(p.prosecdef) from pg_proc as p
    where p.oid in ('shopsync.current_shop_id()'::regprocedure, 'shopsync.current_shop_role()'::regprocedure)
  ),
  'current_shop_id() and current_shop_role() are security definer'
);

-- TEST: every function in public pins its search_path too
select is_empty(
  $$
    select p.oid::regprocedure::text
    from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
    where n.nspname = 'public' and not coalesce('search_path=""' = any (p.proconfig), false)
  $$,
  'every function in public sets search_path = '''''
);

-- (Which shopsync functions API roles may execute: only_the_entry_points_of_shopsync_are_executable_by_api_roles.)

select * from finish();
rollback;
