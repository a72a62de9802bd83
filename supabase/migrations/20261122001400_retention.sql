-- Retention: drop superseded change-log entries, purge old tombstones, raise the cursor floor.
-- A device whose cursor is below its shop's floor gets reset_required from sync_pull.

insert into shopsync.config (key, value, description) values
('retention_keep', '"30 days"', 'Superseded change-log entries older than this are dropped.'),
('tombstone_keep', '"90 days"', 'Soft-deleted rows older than this are purged.');

create or replace function shopsync.run_retention(
  p_keep interval default null,
  p_tombstone_keep interval default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_keep interval := coalesce(p_keep, (shopsync.config_value('retention_keep') #>> '{}')::interval);
  v_tomb interval := coalesce(p_tombstone_keep, (shopsync.config_value('tombstone_keep') #>> '{}')::interval);
  v_superseded bigint := 0;
  v_purged bigint := 0;
  v_n bigint;
  v_t record;
  v_unreferenced text;
begin
  -- 1. Entries with a newer entry for the same row, older than the keep window.
  delete from shopsync.change_log as cl
  where cl.changed_at < now() - v_keep
    and exists (
      select 1 from shopsync.change_log as newer
      where newer.shop_id = cl.shop_id and newer.table_name = cl.table_name
        and newer.row_id = cl.row_id and newer.version > cl.version
    );
  get diagnostics v_superseded = row_count;

  -- 2. Tombstones older than the tombstone window: the rows and their entries go; the floor rises
  -- above the highest purged seq so devices that might have missed the delete start over.
  perform set_config('shopsync.purging', 'on', true);
  -- Children first, and a tombstone still referenced by another row (a deleted product on a past
  -- order item) is kept: purging it would violate the reference and abort the whole run.
  for v_t in
    select st.table_name from shopsync.synced_tables as st where st.policy <> 'append_only'
    order by st.apply_order desc, st.table_name
  loop
    select coalesce(string_agg(format('not exists (select 1 from %s as r where %s)', con.conrelid::regclass, (
      select string_agg(format('r.%I = t.%I', ca.attname, fa.attname), ' and ')
      from unnest(con.conkey, con.confkey) as k (c, f)
      inner join pg_catalog.pg_attribute as ca on ca.attrelid = con.conrelid and ca.attnum = k.c
      inner join pg_catalog.pg_attribute as fa on fa.attrelid = con.confrelid and fa.attnum = k.f
    )), ' and '), 'true')
    into v_unreferenced
    from pg_catalog.pg_constraint as con
    where con.contype = 'f' and con.confrelid = ('public.' || quote_ident(v_t.table_name))::regclass;
    execute format($q$
      with gone as (
        delete from public.%1$I as t where t.deleted_at < now() - $1 and %2$s returning t.shop_id, t.id
      ),
      entries as (
        delete from shopsync.change_log as cl
        using gone
        where cl.shop_id = gone.shop_id and cl.table_name = %1$L and cl.row_id = gone.id
        returning cl.shop_id, cl.seq
      ),
      floors as (
        update shopsync.shop_cursor as c set floor_seq = greatest(c.floor_seq, f.max_seq)
        from (select e.shop_id, max(e.seq) as max_seq from entries as e group by e.shop_id) as f
        where c.shop_id = f.shop_id
        returning 1
      )
      select (select count(*) from gone) + 0 * (select count(*) from floors)
    $q$, v_t.table_name, v_unreferenced) into v_n using v_tomb;
    v_purged := v_purged + v_n;
  end loop;
  perform set_config('shopsync.purging', 'off', true);

  delete from shopsync.push_results as r where r.created_at < now() - v_tomb;
  return jsonb_build_object('superseded_entries_dropped', v_superseded, 'tombstones_purged', v_purged);
end;
$$;

comment on function shopsync.run_retention(interval, interval) is
'Drops superseded change-log entries and purges old tombstones; scheduled daily by pg_cron.';

-- Daily at 03:17 where pg_cron exists (hosted Supabase; the local stack preloads it).
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_cron')
     and current_setting('shared_preload_libraries') like '%pg_cron%' then
    create extension if not exists pg_cron with schema pg_catalog;
    perform cron.schedule('shopsync-retention', '17 3 * * *', 'select shopsync.run_retention()');
  else
    raise notice 'pg_cron is not loaded here: schedule shopsync.run_retention() another way';
  end if;
end
$$;
