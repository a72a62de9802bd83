-- Threat: a signed-in user calls an internal function directly (retention purging every shop,
-- another shop's rate-limit counter, another shop's invoice chain). Postgres grants EXECUTE to
-- PUBLIC by default; the privileges migration takes it back and grants an allow-list.
begin;
select plan(3);

-- TEST: authenticated may execute exactly the RPC entry points and the policy helpers.
select results_eq(
  $$
    select p.oid::regprocedure::text from pg_catalog.pg_proc as p
    inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where n.nspname = 'shopsync' and has_function_privilege('authenticated', p.oid, 'execute')
    order by 1
  $$,
  $$
    values
    ('shopsync.call_failed(text,text)'),
    ('shopsync.checksums(uuid,jsonb)'),
    ('shopsync.choose_shop(uuid)'),
    ('shopsync.current_membership()'),
    ('shopsync.current_shop_id()'),
    ('shopsync.current_shop_role()'),
    ('shopsync.describe_schema()'),
    ('shopsync.leave_shop(uuid)'),
    ('shopsync.meter_call(text)'),
    ('shopsync.metrics()'),
    ('shopsync.order_transition_ok(text,text)'),
    ('shopsync.pull(uuid,bigint,integer)'),
    ('shopsync.pull_v2(uuid,bigint,integer,bigint)'),
    ('shopsync.push(uuid,jsonb)'),
    ('shopsync.register_device(uuid,text,text)'),
    ('shopsync.report_repair(uuid,text,bigint)'),
    ('shopsync.require_seat_in_my_shop()'),
    ('shopsync.reset_device_credential(uuid)'),
    ('shopsync.rotate_device_secret(uuid)'),
    ('shopsync.schema_version()'),
    ('shopsync.shop_dashboard()'),
    ('shopsync.table_rows(uuid,text,uuid,integer)'),
    ('shopsync.verify_my_chain(text)')
  $$,
  'authenticated executes only the allow-listed shopsync functions'
);

-- TEST: anon may execute only the schema version (for health).
select results_eq(
  $$
    select p.oid::regprocedure::text from pg_catalog.pg_proc as p
    inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where n.nspname = 'shopsync' and has_function_privilege('anon', p.oid, 'execute')
  $$,
  $$ values ('shopsync.schema_version()') $$,
  'anon executes only shopsync.schema_version()'
);

-- TEST: nothing in shopsync is executable by PUBLIC.
select is_empty(
  $$
    select p.oid from pg_catalog.pg_proc as p
    inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where n.nspname = 'shopsync'
      and exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a where a.grantee = 0)
  $$,
  'no shopsync function is executable by PUBLIC'
);

select * from finish();
rollback;
