-- Threat closed: a table reachable through the API (schemas public, graphql_public) that is not
-- guarded by row-level security, or whose policies apply to anon, or that calls the tenancy
-- helpers once per row instead of once per statement.
begin;
select plan(6);

-- TEST: RLS is enabled on every table in an exposed schema
select is_empty(
  $$
    select c.oid::regclass::text
    from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
    where n.nspname in ('public', 'graphql_public') and c.relkind in ('r', 'p') and not c.relrowsecurity
  $$,
  'every table in public and graphql_public has row level security enabled'
);

-- TEST: every such table has at least one policy (RLS without policies hides it; with a policy it is meant to be used)
select is_empty(
  $$
    select c.oid::regclass::text
    from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
    where n.nspname in ('public', 'graphql_public') and c.relkind in ('r', 'p')
      and not exists (select 1 from pg_policy as p where p.polrelid = c.oid)
  $$,
  'every table in public and graphql_public has at least one policy'
);

-- TEST: the exposed schemas hold tables at all (the two checks above are not vacuous)
select ok(
  (
    select count(*) from pg_class as c inner join pg_namespace as n on c.relnamespace = n.oid
    where n.nspname = 'public' and c.relkind = 'r'
  ) >= 9,
  'the catalog checks see the nine shopsync tables'
);

-- TEST: views in exposed schemas run with the caller's rights (security_invoker), so RLS applies
select is_empty(
  $$
    select c.oid::regclass::text
    from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
    where n.nspname in ('public', 'graphql_public') and c.relkind in ('v', 'm')
      and not coalesce('security_invoker=true' = any (c.reloptions), false)
  $$,
  'no view in an exposed schema bypasses RLS'
);

-- TEST: policies are for authenticated only (the access-token hook's read of shop_members excepted)
select is_empty(
  $$
    select p.schemaname || '.' || p.tablename || ': ' || p.policyname || ' to ' || p.roles::text
    from pg_policies as p
    where p.schemaname in ('public', 'graphql_public')
      and p.roles <> '{authenticated}'::name []
      and not (p.roles = '{supabase_auth_admin}'::name [] and p.tablename = 'shop_members' and p.cmd = 'SELECT')
  $$,
  'every policy is to authenticated (or supabase_auth_admin reading shop_members for the hook)'
);

-- TEST: every call of the tenancy helpers in a policy is wrapped as (select ...), evaluated once per statement
select is_empty(
  $$
    select p.schemaname || '.' || p.tablename || ': ' || p.policyname
    from pg_policies as p
    cross join lateral (select coalesce(p.qual, '') || ' ' || coalesce(p.with_check, '') as expr) as x
    where p.schemaname in ('public', 'graphql_public')
      and regexp_count(x.expr, 'shopsync\.current_shop_(id|role)\(\)')
        <> regexp_count(x.expr, '\( SELECT shopsync\.current_shop_(id|role)\(\) AS current_shop_(id|role)\)')
  $$,
  'every policy calls current_shop_id()/current_shop_role() through (select ...)'
);

select * from finish();
rollback;
