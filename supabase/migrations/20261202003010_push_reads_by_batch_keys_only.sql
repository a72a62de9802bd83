-- Push at scale (issue 13): the backlog cliff's last statements. Migration 20261201004000 made every
-- read of a shared table name the batch's keys (`id = any(...)`), but three statements also kept
-- `shop_id = $n`, and a key list does not stop the planner from choosing the shop_id index instead:
-- with statistics that say the pushing shop holds no rows (taken when another shop held them all),
-- `Index Scan using customers_shop_id_idx ... Index Cond: (shop_id = ...) Filter: (id = ANY ($0))
-- Rows Removed by Filter: 5000` read every row of the shop for 10 updates (push_write's update, and
-- the same in push_attach_server_rows and the orders validator). The replay lookup of push_claim
-- still joined the batch to `r.shop_id = $1` alone:
--   Nested Loop  Join Filter: (e.event_id = r.event_id)  Rows Removed by Join Filter: 105000
--     -> Materialize -> Index Scan using push_results_pkey on push_results r (rows=1) (actual rows=5000)
--          Index Cond: (shop_id = '…'::uuid)
-- (Found by the test supabase/tests/push/a_push_reads_the_batchs_rows_not_the_shops.test.sql.)
--
-- push_record's `r.shop_id = $1 and r.event_id = any(<the batch's ids>)` was planned the same way:
--   Index Scan using push_results_pkey on push_results r (rows=1)
--     Index Cond: (shop_id = '…'::uuid)  Filter: (event_id = ANY (…))  Rows Removed by Filter: 5000
-- (a key list costs one index descent per key; one descent for the "one row" of the shop looks
-- cheaper).
--
-- Now:
-- * the shop check of the statements on a synced table is `shop_id is not distinct from $n`: the
--   same rows (shop_id is never null) but no index condition, so the only one left is the batch's
--   ids, on the primary key;
-- * push_results (primary key (shop_id, event_id)) is read one key at a time: a correlated
--   subquery `(select ctid ... where shop_id = $1 and event_id = k.event_id)` per batch key has two
--   equalities on the key, which every plan uses as the index condition, and the statement then
--   reads those rows by ctid (a TID scan). Replays (push_claim), results and dropped claims
--   (push_record) are read this way.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- 2. Claim (exactly once); replays read by the batch's keys.
create or replace function shopsync.push_claim(p_shop uuid, p_device_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_ids uuid[];
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  -- A repeated event_id inside the batch answers like its first occurrence; an
  -- event_id already stored answers with the stored result. Claims are taken now, so a concurrent
  -- retry of the same events waits here for this transaction and then finds them stored.
  execute $q$
    update pg_temp.push_events as e
    set status = 'dup_batch', dup_of = f.first_ord
    from (
      select x.ord, min(x.ord) over (partition by x.event_id) as first_ord from pg_temp.push_events as x
      where x.event_id is not null and x.status = 'pending'
    ) as f
    where e.ord = f.ord and f.first_ord < f.ord
  $q$;
  execute $q$
    insert into shopsync.push_results (shop_id, event_id, device_id)
    select $1, e.event_id, $2 from pg_temp.push_events as e where e.status = 'pending'
    order by e.event_id
    on conflict do nothing
  $q$ using p_shop, p_device_id;
  -- A new statement, so a new snapshot: it sees results committed by a concurrent retry we waited
  -- for. Our own fresh claims have no result yet.
  -- Read by the batch's (shop, event_id) keys: never the shop's claims (see the head of this file).
  execute $q$
    select array_agg(e.event_id) from pg_temp.push_events as e where e.status = 'pending'
  $q$ into v_ids;
  if v_ids is null then
    return;
  end if;
  execute $q$
    update pg_temp.push_events as e
    set status = 'duplicate', stored = r.result
    from shopsync.push_results as r
    where r.ctid = any(array(
        select (select x.ctid from shopsync.push_results as x where x.shop_id = $1 and x.event_id = k.event_id)
        from unnest($2) as k (event_id)
      ))
      and r.event_id = e.event_id and e.status = 'pending' and r.result is not null
  $q$ using p_shop, v_ids;
end;
$$;

-- 4c, its statements: for a table, one insert and one update over the staged events of a round
-- ($1 table, $2 round, $3 shop; $4 one event's ord, or null for all of them). The update names the
-- rows it writes by id only (`t.id = any(...)`); the shop check is no index condition.
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
      and e.row_id = t.id and t.shop_id is not distinct from $3 and e.tbl = $1 and e.rnd = $2
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
    where t.id = any($4) and t.id = e.row_id and t.shop_id is not distinct from $3 and e.tbl = $1 and e.rnd = $2
      and e.status = 'conflict'
  $q$, p_table) using p_table, p_round, p_shop, v_ids;
end;
$$;

-- The orders' validator: the orders read by the group's row ids.
create or replace function shopsync.validate_orders(p_shop uuid, p_role text, p_round int)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid[];
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  execute $q$
    select array_agg(e.row_id) from pg_temp.push_events as e
    where e.tbl = 'orders' and e.rnd = $1 and e.status in ('go', 'stale') and e.op = 'update' and e.data ? 'status'
  $q$ into v_ids using p_round;
  if v_ids is null then
    return;
  end if;
  execute $q$
    update pg_temp.push_events as e
    set status = 'rejected', reason = 'invalid_transition',
        message = format('order status cannot move from %s to %s', o.status, e.data ->> 'status')
    from public.orders as o
    where e.tbl = 'orders' and e.rnd = $1 and e.status in ('go', 'stale') and e.op = 'update'
      and o.id = any($4) and o.id = e.row_id and o.shop_id is not distinct from $2
      and e.data ? 'status'
      and not shopsync.order_transition_ok(o.status, e.data ->> 'status')
      and not (e.override and $3 = 'owner')
  $q$ using p_round, p_shop, p_role, v_ids;
end;
$$;

-- 5. Record: the results stored and the rejected claims dropped by (shop, event_id) of the batch.
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
      where r.ctid = any(array(
        select (select x.ctid from shopsync.push_results as x where x.shop_id = $1 and x.event_id = k.event_id)
        from unnest($3) as k (event_id)
      ))
    $q$ using p_shop, v_fin, v_fin_ids;
  end if;
  -- After the results: a claim that now holds one is never dropped.
  if v_dropped_ids is not null then
    execute $q$
      delete from shopsync.push_results as r
      where r.ctid = any(array(
        select (select x.ctid from shopsync.push_results as x where x.shop_id = $1 and x.event_id = k.event_id)
        from unnest($2) as k (event_id)
      ))
        and r.result is null
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
