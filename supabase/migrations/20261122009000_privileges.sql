-- Privileges: who may use what, granted in this one place, the last migration. Allow-lists: every
-- table and function of the project's schemas first loses what Postgres and Supabase grant by
-- default, then gets back exactly what is listed here. A later migration that adds a table or a
-- function grants it in a new privileges migration of its own (the catalog tests
-- only_the_entry_points_of_shopsync_are_executable_by_api_roles and
-- anon_can_call_health_and_nothing_else fail until then).
--
-- Rows are RLS's business (each capability's policies); these grants decide which statements an
-- API role may run at all.

-- Schemas -----------------------------------------------------------------------------------------
-- shopsync is not exposed by the API; usage lets RLS policies and the public wrappers call the
-- entry points granted below. anon needs it for health()'s schema version only.
revoke all on schema shopsync from public;
grant usage on schema shopsync to anon, authenticated, service_role;
-- Supabase Auth calls the access-token hook as supabase_auth_admin.
grant usage on schema public to supabase_auth_admin;

-- Functions ---------------------------------------------------------------------------------------
-- Postgres grants EXECUTE to PUBLIC on every new function, and Supabase's default privileges add the
-- API roles in public; `alter default privileges in schema` can only add to the former. So: no
-- function of a later migration is executable by anon by default, and every function of ours
-- loses EXECUTE for everyone but its owner, then the allow-list grants it back.
alter default privileges in schema public revoke execute on functions from public;
alter default privileges in schema public revoke execute on functions from anon;

do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure
    from pg_catalog.pg_proc as p inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where n.nspname in ('public', 'shopsync')
      and not exists (
        select 1 from pg_catalog.pg_depend as d
        where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
      )
  loop
    execute format('revoke execute on function %s from public, anon, authenticated, service_role', f);
  end loop;
end
$$;

-- The RPCs (public): each wrapper calls its shopsync entry point, which checks the caller itself.
grant execute on function public.health() to anon, authenticated, service_role;
grant execute on function public.sync_register_device(uuid, text, text) to authenticated, service_role;
grant execute on function public.sync_push(uuid, jsonb) to authenticated, service_role;
grant execute on function public.sync_pull(uuid, bigint, integer) to authenticated, service_role;
grant execute on function public.sync_schema() to authenticated, service_role;
grant execute on function public.sync_metrics() to authenticated, service_role;
grant execute on function public.verify_invoice_chain(text) to authenticated, service_role;
grant execute on function public.shop_dashboard() to authenticated, service_role;
-- The platform operator only (service_role key, never on a device).
grant execute on function public.platform_overview() to service_role;
-- Supabase Auth, before it issues an access token (config.toml).
grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin, service_role;

-- The entry points of shopsync the wrappers call.
grant execute on function shopsync.register_device(uuid, text, text) to authenticated;
grant execute on function shopsync.push(uuid, jsonb) to authenticated;
grant execute on function shopsync.pull(uuid, bigint, integer) to authenticated;
grant execute on function shopsync.describe_schema() to authenticated;
grant execute on function shopsync.metrics() to authenticated;
grant execute on function shopsync.verify_my_chain(text) to authenticated;
grant execute on function shopsync.shop_dashboard() to authenticated;
grant execute on function shopsync.platform_overview() to service_role;
grant execute on function shopsync.schema_version() to anon, authenticated, service_role;

-- What RLS policies and the orders trigger evaluate as the caller.
grant execute on function shopsync.current_membership() to authenticated, service_role;
grant execute on function shopsync.current_shop_id() to authenticated, service_role;
grant execute on function shopsync.current_shop_role() to authenticated, service_role;
grant execute on function shopsync.order_transition_ok(text, text) to authenticated, service_role;

-- Tables ------------------------------------------------------------------------------------------
-- Supabase's default privileges give anon, authenticated and service_role everything on a new table
-- in public. All of it goes; anon gets nothing; nobody deletes or truncates (rows are soft-deleted
-- and only the retention job, as postgres, purges); the append-only tables take no update.
-- (references and trigger stay as Supabase grants them.) The shopsync tables have no grants: only
-- the security definer functions that own the engine read and write them.
do $$
declare
  t regclass;
begin
  for t in
    select c.oid::regclass
    from pg_catalog.pg_class as c inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
    where n.nspname in ('public', 'shopsync') and c.relkind in ('r', 'p', 'v', 'm', 'S')
  loop
    execute format('revoke all on %s from public, anon, authenticated, service_role', t);
  end loop;
end
$$;

-- Members: owners add and change members (policies); the shop, its licence and its devices are
-- created by the platform and registration, only updated by owners.
grant select, update, references, trigger on public.shops, public.licenses, public.devices to authenticated;
grant select, insert, update, references, trigger on public.shop_members to authenticated;
-- The synced tables.
grant select, insert, update, references, trigger
on public.shop_settings, public.customers, public.products, public.orders, public.order_items
to authenticated;
grant select, insert, references, trigger on public.invoices, public.stock_movements to authenticated;
grant select, references, trigger on public.inventory_levels to authenticated;

grant all on
public.shops, public.shop_members, public.licenses, public.devices, public.shop_settings, public.customers,
public.products, public.orders, public.order_items, public.inventory_levels
to service_role;
grant select, insert, references, trigger on public.invoices, public.stock_movements to service_role;

-- Supabase Auth reads memberships for the access-token hook (policy shop_members_read_by_auth_admin).
grant select on public.shop_members to supabase_auth_admin;
