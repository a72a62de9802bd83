-- Push at scale (issue 13 item 1): no cliff for a new shop. Every read or write of a shared table
-- inside a push is an index lookup by the batch's own keys, whatever the planner's statistics say.
--
-- The cliff, found with auto_explain on the gateway's connections: right after 60,000 events of
-- another shop, the statistics of shopsync.push_results held that one shop only (n_distinct 1), so
-- for a new shop `r.shop_id = $1` was estimated at 1 row. push_record's result update then drove
-- the join from the shop's rows and scanned the batch once for each of them:
--   Nested Loop (rows=1) (actual rows=500) Join Filter: (r.event_id = e.event_id)
--     Rows Removed by Join Filter: 2749500
--     -> Index Scan using push_results_pkey on push_results r (rows=1) (actual rows=5500)
--          Index Cond: (shop_id = '…'::uuid)
--     -> Seq Scan on push_events e (rows=1) (actual rows=500 loops=5500)
-- Each call cost grew with the rows the shop already had (2.5 s at 5,500), until autovacuum analyzed
-- the table. The same shape (a shared table restricted by shop_id alone, joined to the batch) was in
-- the update of push_write and in push_attach_server_rows.
--
-- Now each such statement names the rows it touches by key: `key = any(<the batch's keys>)` is an
-- index condition, so every plan the planner can choose touches the batch's rows only, and the
-- cost per event depends neither on the statistics' age nor on other shops' rows.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- 4a. The group's rows as they are now, locked, and each event classified against them: go,
-- stale (its base is older), conflict or rejected. Returns how many are stale.
create or replace function shopsync.push_classify(p_shop uuid, p_table text, p_round int)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_stale bigint;
  v_ids uuid[];
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  -- The group's row ids: the table is read by these keys only (an index condition, whatever the
  -- statistics say).
  execute $q$
    select array_agg(p.row_id order by p.row_id) from pg_temp.push_events as p
    where p.tbl = $1 and p.rnd = $2 and p.status = 'pending'
  $q$ into v_ids using p_table, p_round;
  if v_ids is null then
    return 0;
  end if;
  -- Current state of the rows, locked (in key order).
  execute format($q$
    select 1 from public.%1$I as x where x.id = any($1) order by x.id for update
  $q$, p_table) using v_ids;
  execute format($q$
    update pg_temp.push_events as e
    set cur_version = x.version, cur_shop = x.shop_id, cur_deleted = x.deleted_at is not null
    from public.%1$I as x
    where x.id = any($3) and x.id = e.row_id and e.tbl = $1 and e.rnd = $2 and e.status = 'pending'
  $q$, p_table) using p_table, p_round, v_ids;

  -- Classify against the current version; the answer is how many are stale.
  execute $q$
    with classified as (
      update pg_temp.push_events as e
      set status = case
            when e.op = 'insert' and e.cur_version is not null then 'conflict'
            when e.op = 'insert' then 'go'
            when e.cur_version is null or e.cur_shop <> $3 then 'rejected'
            when e.cur_deleted then 'conflict'
            when e.base_version > e.cur_version then 'rejected'
            when e.base_version = e.cur_version then 'go'
            else 'stale'
          end,
          reason = case
            when e.op = 'insert' and e.cur_version is not null then 'id_exists'
            when e.op = 'insert' then null
            when e.cur_version is null or e.cur_shop <> $3 then 'not_found'
            when e.cur_deleted then 'row_deleted'
            when e.base_version > e.cur_version then 'invalid_base_version'
          end,
          message = case
            when e.op <> 'insert' and (e.cur_version is null or e.cur_shop <> $3)
              then format('%s has no row %s', e.tbl, e.row_id)
            when e.op <> 'insert' and not e.cur_deleted and e.base_version > e.cur_version
              then format('base_version %s is ahead of the server''s %s', e.base_version, e.cur_version)
          end
      where e.tbl = $1 and e.rnd = $2 and e.status = 'pending'
      returning e.status
    )
    select count(*) from classified where classified.status = 'stale'
  $q$ into v_stale using p_table, p_round, p_shop;
  return v_stale;
end;
$$;

-- 4c, its statements: for a table, one insert and one update over the staged events of a round
-- ($1 table, $2 round, $3 shop; $4 one event's ord, or null for all of them). The update names
-- the rows it writes by id (`t.id = any(...)`): an index condition, never a scan of the shop.
create or replace function shopsync.push_write_statements(p_table text, out insert_sql text, out update_sql text)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_cols record;
  v_ins_cols text := '';
  v_ins_vals text := '';
  v_upd_sets text := '';
begin
  for v_cols in select * from shopsync.table_columns(p_table) as c where not c.is_system loop
    v_ins_cols := v_ins_cols || ', ' || quote_ident(v_cols.column_name);
    v_ins_vals := v_ins_vals || format(
      ', case when e.data ? %1$L then %2$s else %3$s end',
      v_cols.column_name,
      case when v_cols.column_type in ('json', 'jsonb')
        then format('nullif(e.data -> %L, ''null''::jsonb)::%s', v_cols.column_name, v_cols.column_type)
        else format('(e.data ->> %L)::%s', v_cols.column_name, v_cols.column_type) end,
      coalesce(v_cols.default_expr, 'null'));
    v_upd_sets := v_upd_sets || format(
      ', %1$I = case when e.data ? %2$L then %3$s else t.%1$I end',
      v_cols.column_name, v_cols.column_name,
      case when v_cols.column_type in ('json', 'jsonb')
        then format('nullif(e.data -> %L, ''null''::jsonb)::%s', v_cols.column_name, v_cols.column_type)
        else format('(e.data ->> %L)::%s', v_cols.column_name, v_cols.column_type) end);
  end loop;
  -- Rows go in in event order (an invoice series chains to the row before it). Each statement
  -- applies its whole group or fails as a whole, so success needs no RETURNING: an insert makes
  -- version 1, an update the locked version + 1 (push_write).
  insert_sql := format($q$
    insert into public.%1$I as t (id, shop_id, client_changed_at%2$s)
    select e.row_id, $3, e.client_ts%3$s
    from pg_temp.push_events as e
    where e.tbl = $1 and e.rnd = $2 and e.status = 'go' and e.op = 'insert' and ($4::int is null or e.ord = $4)
    order by e.ord
  $q$, p_table, v_ins_cols, v_ins_vals);
  update_sql := format($q$
    update public.%1$I as t
    set client_changed_at = e.client_ts,
        deleted_at = case when e.op = 'delete' then now() else t.deleted_at end%2$s
    from pg_temp.push_events as e
    where t.id = any(array(
        select x.row_id from pg_temp.push_events as x
        where x.tbl = $1 and x.rnd = $2 and x.status in ('go', 'go_merge', 'go_partial') and x.op <> 'insert'
          and ($4::int is null or x.ord = $4)
      ))
      and e.row_id = t.id and t.shop_id = $3 and e.tbl = $1 and e.rnd = $2
      and e.status in ('go', 'go_merge', 'go_partial') and e.op <> 'insert' and ($4::int is null or e.ord = $4)
  $q$, p_table, v_upd_sets);
end;
$$;

-- 4d. Conflicts carry the server's row (never another shop's), read by the conflicts' row ids.
create or replace function shopsync.push_attach_server_rows(p_shop uuid, p_table text, p_round int)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_ids uuid[];
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  execute $q$
    select array_agg(e.row_id) from pg_temp.push_events as e where e.tbl = $1 and e.rnd = $2 and e.status = 'conflict'
  $q$ into v_ids using p_table, p_round;
  if v_ids is null then
    return;
  end if;
  execute format($q$
    update pg_temp.push_events as e set server_row = to_jsonb(t), version = coalesce(e.version, t.version)
    from public.%1$I as t
    where t.id = any($4) and t.id = e.row_id and t.shop_id = $3 and e.tbl = $1 and e.rnd = $2
      and e.status = 'conflict'
  $q$, p_table) using p_table, p_round, p_shop, v_ids;
end;
$$;

-- 5. Record: results stored with the effect (rejections leave no trace), the day's statistics, the
-- device's last push; the answer in event order with the shop's cursor. The claims are updated and
-- dropped by (shop, event_id) keys from the batch: index lookups, never a scan of the shop's claims.
create or replace function shopsync.push_record(p_shop uuid, p_device_id uuid, p_events jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_results jsonb;
  v_counts record;
  v_cursor bigint;
  v_fin jsonb;
  v_fin_ids uuid[];
  v_dropped_ids uuid[];
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  execute $q$
    update pg_temp.push_events as e
    set status = 'rejected', reason = coalesce(e.reason, 'not_applied')
    where e.status in ('pending', 'go', 'go_merge', 'go_partial', 'stale')
  $q$;
  -- The results to store, keyed by event_id, and the claims of rejected events to drop.
  execute $q$
    select
      jsonb_object_agg(e.event_id::text, jsonb_build_object(
        'event_id', e.event_id, 'status', e.status, 'version', e.version, 'reason', e.reason,
        'server_row', e.server_row, 'message', e.message))
        filter (where e.status in ('applied', 'merged', 'conflict')),
      array_agg(e.event_id) filter (where e.status in ('applied', 'merged', 'conflict')),
      array_agg(e.event_id) filter (where e.status = 'rejected' and e.event_id is not null)
    from pg_temp.push_events as e
    where e.dup_of is null
  $q$ into v_fin, v_fin_ids, v_dropped_ids;
  if v_fin_ids is not null then
    execute $q$
      update shopsync.push_results as r set result = $2 -> (r.event_id::text)
      where r.shop_id = $1 and r.event_id = any($3)
    $q$ using p_shop, v_fin, v_fin_ids;
  end if;
  -- After the results: a claim that now holds one is never dropped.
  if v_dropped_ids is not null then
    execute $q$
      delete from shopsync.push_results as r
      where r.shop_id = $1 and r.event_id = any($2) and r.result is null
    $q$ using p_shop, v_dropped_ids;
  end if;

  execute $q$
    select coalesce(jsonb_agg(
      case
        when e.status = 'duplicate' then
          coalesce(e.stored, '{}'::jsonb) || jsonb_build_object(
            'event_id', e.event_id, 'status', 'duplicate', 'original_status', e.stored ->> 'status')
        when e.status = 'dup_batch' then
          case when f.status in ('applied', 'merged', 'conflict', 'duplicate') then
            jsonb_build_object('event_id', e.event_id, 'status', 'duplicate',
              'original_status', case when f.status = 'duplicate' then f.stored ->> 'status' else f.status end,
              'version', coalesce(f.version, (f.stored ->> 'version')::bigint), 'reason', f.reason,
              'server_row', f.server_row, 'message', 'repeated event_id in the same batch')
          else
            jsonb_build_object('event_id', e.event_id, 'status', 'rejected', 'version', null,
              'reason', f.reason, 'server_row', null, 'message', 'repeated event_id in the same batch')
          end
        else
          jsonb_build_object('event_id', coalesce(to_jsonb(e.event_id), $1 -> (e.ord::int - 1) -> 'event_id'),
            'status', e.status, 'version', e.version, 'reason', e.reason,
            'server_row', e.server_row, 'message', e.message)
      end order by e.ord), '[]'::jsonb)
    from pg_temp.push_events as e
    left join pg_temp.push_events as f on f.ord = e.dup_of
  $q$ into v_results using p_events;

  execute $q$
    select
      count(*) filter (where status = 'applied') as applied,
      count(*) filter (where status = 'merged') as merged,
      count(*) filter (where status = 'conflict') as conflicts,
      count(*) filter (where status = 'rejected') as rejected,
      count(*) filter (where status in ('duplicate', 'dup_batch')) as duplicates
    from pg_temp.push_events
  $q$ into v_counts;

  insert into shopsync.push_stats as s (shop_id, device_id, day, pushes, applied, merged, conflicts, rejected, duplicates)
  values (p_shop, p_device_id, current_date, 1, v_counts.applied, v_counts.merged, v_counts.conflicts,
          v_counts.rejected, v_counts.duplicates)
  on conflict (shop_id, day, device_id) do update
  set pushes = s.pushes + 1, applied = s.applied + excluded.applied, merged = s.merged + excluded.merged,
      conflicts = s.conflicts + excluded.conflicts, rejected = s.rejected + excluded.rejected,
      duplicates = s.duplicates + excluded.duplicates;
  update public.devices set last_push_at = now(), last_seen_at = now() where id = p_device_id;

  select c.last_seq into v_cursor from shopsync.shop_cursor as c where c.shop_id = p_shop;
  return jsonb_build_object('results', v_results, 'cursor', v_cursor);
end;
$$;
