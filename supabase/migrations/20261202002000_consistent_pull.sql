set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Consistent pull (issue 14, part A): a device shows only states the server had.
--
-- * Every change-log entry records its writing transaction (change_log.xact). sync_pull_v2 ends a
--   page only where a transaction ends, unless one transaction is bigger than a page: then the page
--   says so (consistent = false) and the device stages it until the transaction's end arrives.
-- * Retention drops entries (superseded versions, purged tombstones). A device whose cursor lies
--   below a dropped entry would see a mix no server state had until it reaches the shop's tip as it
--   was at that retention run: shopsync.pull_compaction keeps, per shop, the highest dropped seq
--   and that tip, and sync_pull_v2 answers consistent = false until the device is past it.
-- * The page is columnar json (not jsonb): each table's columns once, rows as arrays; about half
--   the server's time and a third of the client's parsing.
-- sync_pull (v1) is unchanged: clients that do not upgrade keep its semantics.

-- Entries written before this migration have no transaction id (null): their transaction is told
-- apart by changed_at (now(), the transaction's start). Set in two steps: no table rewrite.
alter table shopsync.change_log add column xact xid8;
alter table shopsync.change_log alter column xact set default pg_current_xact_id();
comment on column shopsync.change_log.xact is
'The transaction that wrote the entry (null for entries older than 20261202002000): pages of '
'sync_pull_v2 end where a transaction ends.';

create table shopsync.pull_compaction (
  shop_id uuid primary key references public.shops (id),
  max_dropped_seq bigint not null default 0,
  consistent_seq bigint not null default 0
);
comment on table shopsync.pull_compaction is
'Per shop: the highest change-log seq retention dropped, and the shop''s last seq at that run. A '
'device that pulls from below max_dropped_seq shows nothing until it has reached consistent_seq.';

-- Retention: the body of 20261122001400_retention.sql, plus pull_compaction kept up to date in the
-- same statements that drop entries.
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
  with dropped as (
    delete from shopsync.change_log as cl
    where cl.changed_at < now() - v_keep
      and exists (
        select 1 from shopsync.change_log as newer
        where newer.shop_id = cl.shop_id and newer.table_name = cl.table_name
          and newer.row_id = cl.row_id and newer.version > cl.version
      )
    returning cl.shop_id, cl.seq
  ),

  noted as (
    insert into shopsync.pull_compaction as pc (shop_id, max_dropped_seq, consistent_seq)
    select d.shop_id, max(d.seq), max(c.last_seq)
    from dropped as d
    inner join shopsync.shop_cursor as c on d.shop_id = c.shop_id
    group by d.shop_id
    on conflict (shop_id) do update
    set max_dropped_seq = greatest(pc.max_dropped_seq, excluded.max_dropped_seq),
    consistent_seq = greatest(pc.consistent_seq, excluded.consistent_seq)
    returning 1
  )

  select (select count(*) from dropped) + 0 * (select count(*) from noted) into v_superseded;

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
      ),
      noted as (
        insert into shopsync.pull_compaction as pc (shop_id, max_dropped_seq, consistent_seq)
        select e.shop_id, max(e.seq), max(c.last_seq)
        from entries as e
        inner join shopsync.shop_cursor as c on e.shop_id = c.shop_id
        group by e.shop_id
        on conflict (shop_id) do update
        set max_dropped_seq = greatest(pc.max_dropped_seq, excluded.max_dropped_seq),
            consistent_seq = greatest(pc.consistent_seq, excluded.consistent_seq)
        returning 1
      )
      select (select count(*) from gone) + 0 * (select count(*) from floors) + 0 * (select count(*) from noted)
    $q$, v_t.table_name, v_unreferenced) into v_n using v_tomb;
    v_purged := v_purged + v_n;
  end loop;
  perform set_config('shopsync.purging', 'off', true);

  delete from shopsync.push_results as r where r.created_at < now() - v_tomb;
  return jsonb_build_object('superseded_entries_dropped', v_superseded, 'tombstones_purged', v_purged);
end;
$$;

-- sync_pull_v2: v1's checks and reset rules; pages that end where a transaction ends; the
-- consistent flag; a json page.
create or replace function shopsync.pull_v2(p_device_id uuid, p_cursor bigint, p_limit int, p_applied bigint)
returns json
language plpgsql
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
as $$
declare
  v_shop uuid;
  v_last bigint;
  v_floor bigint;
  v_started_under bigint;
  v_applied bigint := coalesce(p_applied, p_cursor);
  v_changes json;
  v_tables json;
  v_new_cursor bigint;
  v_limit int := least(greatest(coalesce(p_limit, 2000), 1), 5000);
  v_max_bytes bigint := coalesce((shopsync.config_value('pull_max_page_bytes'))::bigint, 8388608);
  v_bytes bigint := 0;
  v_n int := 0;
  v_cut bigint;
  v_tx_end bigint;
  v_stopped boolean := false;
  v_prev_xact xid8;
  v_prev_at timestamptz;
  v_entry record;
  v_dropped bigint;
  v_consistent_at bigint;
  v_consistent boolean;
begin
  select rd.shop_id into v_shop from shopsync.require_device(p_device_id, false) as rd;
  if p_cursor is null or p_cursor < 0 then
    raise exception 'p_cursor must be 0 or a cursor returned by sync_pull_v2'
      using errcode = 'PT400', detail = 'invalid_cursor';
  end if;
  if v_applied < 0 or v_applied > p_cursor then
    raise exception 'p_applied must be the last cursor the device applied, at most p_cursor'
      using errcode = 'PT400', detail = 'invalid_cursor';
  end if;
  select c.last_seq, c.floor_seq into v_last, v_floor from shopsync.shop_cursor as c where c.shop_id = v_shop;
  if p_cursor > v_last then
    raise exception 'cursor % is ahead of the shop''s log (%); the device must reset', p_cursor, v_last
      using errcode = 'PT409', detail = 'cursor_ahead';
  end if;
  if p_cursor = 0 then
    update public.devices set pull_floor = v_floor where id = p_device_id;
  end if;
  -- p_cursor is what the device has seen (applied or staged): v1's rule.
  select d.pull_floor into v_started_under from public.devices as d where d.id = p_device_id;
  if p_cursor > 0 and p_cursor < v_floor and coalesce(v_started_under, -1) < v_floor then
    update public.devices set last_pull_at = now(), last_seen_at = now() where id = p_device_id;
    return json_build_object(
      'tables', '{}'::json, 'changes', '[]'::json, 'cursor', 0, 'has_more', true, 'remaining', v_last,
      'reset_required', true, 'consistent', false, 'server_time', now()
    );
  end if;

  -- The page: at most v_limit entries and pull_max_page_bytes (at least one entry), ending at the
  -- last entry that ends its transaction (the next entry belongs to another transaction, or there
  -- is none up to v_last: the shop's last seq when this call began ends a committed transaction,
  -- and entries committed since are left for the next page). The scan reads one entry past the
  -- limit to know whether the last one ends its transaction.
  for v_entry in
    select cl.seq, cl.xact, cl.changed_at,
      case when pg_column_compression(cl.row) is null then pg_column_size(cl.row)
        else pg_column_size(cl.row || '{}'::jsonb) end as bytes
    from shopsync.change_log as cl
    where cl.shop_id = v_shop and cl.seq > p_cursor and cl.seq <= v_last
    order by cl.seq
    limit v_limit + 1
  loop
    if v_cut is not null and (v_entry.xact is distinct from v_prev_xact or v_entry.changed_at <> v_prev_at) then
      v_tx_end := v_cut;
    end if;
    if v_n >= v_limit or (v_cut is not null and v_bytes + coalesce(v_entry.bytes, 0) > v_max_bytes) then
      v_stopped := true;
      exit;
    end if;
    v_bytes := v_bytes + coalesce(v_entry.bytes, 0);
    v_cut := v_entry.seq;
    v_n := v_n + 1;
    v_prev_xact := v_entry.xact;
    v_prev_at := v_entry.changed_at;
  end loop;
  if not v_stopped then
    v_tx_end := v_cut;
  end if;

  -- Columnar: an entry is [seq, table, op, row_id, version, values], values in the order of the
  -- page's tables.<table> (jsonb's own key order: by length, then bytewise), or the row as an
  -- object when its keys are not the table's columns (an entry older than an added column).
  with page as (
    select cl.seq, cl.table_name, cl.op, cl.row_id, cl.version, cl.row,
      jsonb_path_query_array(cl.row, '$.*') as vals
    from shopsync.change_log as cl
    where cl.shop_id = v_shop and cl.seq > p_cursor and cl.seq <= coalesce(v_tx_end, v_cut)
  ),

  cols as (
    select t.table_name, array_agg(a.attname::text order by octet_length(a.attname::text), a.attname::text collate "C") as names
    from (select distinct pg.table_name from page as pg) as t
    inner join pg_catalog.pg_attribute as a
      on a.attrelid = ('public.' || quote_ident(t.table_name))::regclass and a.attnum > 0 and not a.attisdropped
    group by t.table_name
  )

  select
    coalesce(json_agg(json_build_array(
      p.seq, p.table_name, p.op, p.row_id, p.version,
      case when jsonb_array_length(p.vals) = cardinality(c.names) then p.vals else p.row end
    ) order by p.seq), '[]'::json),
    coalesce(max(p.seq), p_cursor),
    (select coalesce(json_object_agg(c2.table_name, c2.names), '{}'::json) from cols as c2)
  into v_changes, v_new_cursor, v_tables
  from page as p
  inner join cols as c on p.table_name = c.table_name;
  -- Nothing left after the cursor: the entries up to last_seq were purged; jump to the end.
  if v_cut is null then
    v_new_cursor := v_last;
    v_tx_end := v_last;
  end if;

  -- Read after the entries: a retention run that committed before the entries were read is seen.
  select pc.max_dropped_seq, pc.consistent_seq into v_dropped, v_consistent_at
  from shopsync.pull_compaction as pc where pc.shop_id = v_shop;
  v_consistent := v_tx_end is not null
    and (v_applied >= coalesce(v_dropped, 0) or v_new_cursor >= coalesce(v_consistent_at, 0));

  update public.devices
  set last_cursor = greatest(last_cursor, case when v_consistent then v_new_cursor else v_applied end),
    last_pull_at = now(), last_seen_at = now()
  where id = p_device_id;

  return json_build_object(
    'tables', v_tables,
    'changes', v_changes,
    'cursor', v_new_cursor,
    'has_more', v_new_cursor < v_last,
    'remaining', v_last - v_new_cursor,
    'reset_required', false,
    'consistent', v_consistent,
    'server_time', now()
  );
end;
$$;

comment on function shopsync.pull_v2(uuid, bigint, integer, bigint) is
'Changes of the device''s shop after p_cursor in commit order, pages ending where transactions end; '
'consistent says whether everything after p_applied up to cursor, applied together, is a state the '
'server had. See docs/protocol.md, sync_pull_v2.';

create or replace function public.sync_pull_v2(
  p_device_id uuid, p_cursor bigint, p_limit int default 2000, p_applied bigint default null
)
returns json
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_state text;
  v_msg text;
begin
  perform shopsync.meter_call('pull');
  begin
    return shopsync.pull_v2(p_device_id, p_cursor, p_limit, p_applied);
  exception
    when query_canceled or lock_not_available or deadlock_detected or serialization_failure
      or program_limit_exceeded or insufficient_resources then
      get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
      return shopsync.call_failed(v_state, v_msg)::json;
  end;
end;
$$;

comment on function public.sync_pull_v2(uuid, bigint, integer, bigint) is
'Consistent pull: pages end where server transactions end; see docs/protocol.md, sync_pull_v2.';

-- Privileges of this capability's objects.
revoke all on shopsync.pull_compaction from public, anon, authenticated, service_role;
revoke execute on function shopsync.pull_v2(uuid, bigint, integer, bigint)
from public, anon, authenticated, service_role;
revoke execute on function public.sync_pull_v2(uuid, bigint, integer, bigint)
from public, anon, authenticated, service_role;
grant execute on function shopsync.pull_v2(uuid, bigint, integer, bigint) to authenticated;
grant execute on function public.sync_pull_v2(uuid, bigint, integer, bigint) to authenticated, service_role;
