-- Which functions of the private schema the API roles may execute: an allow-list.
--
-- Postgres grants EXECUTE to PUBLIC on every new function, and `alter default privileges in
-- schema` can only add to that, never take it away. So after all capabilities are in place, this
-- takes EXECUTE on every shopsync function away from PUBLIC and the API roles and grants back
-- exactly the entry points. A later migration that adds a shopsync function must grant it here
-- (the catalog test only_the_entry_points_of_shopsync_are_executable_by_api_roles fails until then).

do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure
    from pg_catalog.pg_proc as p inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where n.nspname = 'shopsync'
  loop
    execute format('revoke execute on function %s from public, anon, authenticated, service_role', f);
  end loop;
end
$$;

-- RLS policies and the orders trigger, evaluated as the caller.
grant execute on function shopsync.current_membership() to authenticated, service_role;
grant execute on function shopsync.current_shop_id() to authenticated, service_role;
grant execute on function shopsync.current_shop_role() to authenticated, service_role;
grant execute on function shopsync.order_transition_ok(text, text) to authenticated, service_role;

-- What the public RPC wrappers call (each checks the caller itself).
grant execute on function shopsync.push(uuid, jsonb) to authenticated;
grant execute on function shopsync.pull(uuid, bigint, integer) to authenticated;
grant execute on function shopsync.register_device(uuid, text, text) to authenticated;
grant execute on function shopsync.describe_schema() to authenticated;
grant execute on function shopsync.metrics() to authenticated;
grant execute on function shopsync.shop_dashboard() to authenticated;
grant execute on function shopsync.verify_my_chain(text) to authenticated;
grant execute on function shopsync.schema_version() to anon, authenticated, service_role;
grant execute on function shopsync.platform_overview() to service_role;
