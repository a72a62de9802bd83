-- A cheaper push (issue 13 items 3 and 4): fewer statements per call, each statement's plan kept,
-- each event's answer built once. Same guarantees, same answers.
--
-- Measured first (bench/profile_push.py and bench/sale.py: pg_stat_statements with track = all and
-- track_planning; docs/performance.md, "A sale, the batch and the fleet"), then changed:
-- * push_claim: the insert of the claims returns the ones it took, so only the others are looked
--   up (a fresh batch skips the lookup statement);
-- * push_record: one statement builds each event's answer once, stores the results of the applied,
--   merged and conflict events (their answer is their stored result) and counts; it built the
--   stored results (a jsonb object keyed by event_id) and the answers separately;
-- * push_validate: wholly static (the value checks inlined when the function is created), so its
--   column and value query is planned once per backend, not on every call.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- 2. Claim (as in 20261202003000_push_at_scale.sql). The insert of the claims says which ones it
-- took (RETURNING): only the others (an event_id stored before, or claimed by a concurrent push we
-- waited for) are looked up, so a fresh batch, the common case, skips the lookup statement.
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
  update pg_temp.push_events as e
  set status = 'dup_batch', dup_of = f.first_ord
  from (
    select x.ord, min(x.ord) over (partition by x.event_id) as first_ord from pg_temp.push_events as x
    where x.event_id is not null and x.status = 'pending'
  ) as f
  where e.ord = f.ord and f.first_ord < f.ord;
  -- The claims not taken: their event_id was claimed already (committed, or by a concurrent push
  -- this insert waited for).
  with taken as (
    insert into shopsync.push_results (shop_id, event_id, device_id)
    select p_shop, e.event_id, p_device_id from pg_temp.push_events as e where e.status = 'pending'
    order by e.event_id
    on conflict do nothing
    returning event_id
  )
  select array_agg(e.event_id) into v_ids
  from pg_temp.push_events as e
  where e.status = 'pending' and e.event_id not in (select t.event_id from taken as t);
  if v_ids is null then
    return;
  end if;
  -- A new statement, so a new snapshot: it sees results committed by a concurrent retry we waited
  -- for. Read by the batch's (shop, event_id) keys: never the shop's claims.
  update pg_temp.push_events as e
  set status = 'duplicate', stored = r.result
  from shopsync.push_results as r
  where r.ctid = any(array(
      select (select x.ctid from shopsync.push_results as x where x.shop_id = p_shop and x.event_id = k.event_id)
      from unnest(v_ids) as k (event_id)
    ))
    and r.event_id = e.event_id and e.status = 'pending' and r.result is not null;
end;
$$;

-- 3. Validate (as in 20261202003000_push_at_scale.sql), now wholly static: the function is created
-- here with the value checks' text inlined (as invoice_lines_valid is), so the column and value
-- query is planned once per backend instead of parsed and planned on every call (EXECUTE: ~1 ms of a
-- sale's push). Same rules, same answers.
do $do$
begin
  execute replace(
    $fn$
    create or replace function shopsync.push_validate(p_role text)
    returns void
    language plpgsql
    set search_path = ''
    as $body$
    begin
      perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
      -- Table-level rules: known table, policy, role.
      update pg_temp.push_events as e
      set status = 'rejected',
          reason = case
            when st.table_name is null then 'unknown_table'
            when st.policy = 'server_only' then 'read_only_table'
            when st.policy = 'append_only' and e.op <> 'insert' then 'append_only'
            else 'role_forbidden'
          end,
          message = case
            when st.table_name is null then format('no synced table named %L', e.tbl)
            when st.policy = 'server_only' then format('%s is written by the server only', e.tbl)
            when st.policy = 'append_only' and e.op <> 'insert' then format('%s is append-only', e.tbl)
            else format('role %s may not write %s', p_role, e.tbl)
          end
      from pg_temp.push_events as e2
      left join shopsync.synced_tables as st on st.table_name = e2.tbl
      where e2.ord = e.ord and e.status = 'pending'
        and (st.table_name is null or st.policy = 'server_only'
             or (st.policy = 'append_only' and e.op <> 'insert') or not (p_role = any (st.write_roles)));

      -- Columns and values, checked against the catalog (the value check inlined: see
      -- shopsync.value_check_sql).
      with cols as (
        select st.table_name, c.*
        from shopsync.synced_tables as st
        cross join lateral shopsync.table_columns(st.table_name) as c
        where st.table_name in (select distinct x.tbl from pg_temp.push_events as x where x.status = 'pending')
      ),

      bad as (
        select distinct on (e.ord) e.ord,
          case
            when c.column_name is null then 'unknown_column'
            when c.is_system then 'read_only_column'
            when jsonb_typeof(kv.value) = 'null' and c.not_null then 'null_value'
            else 'invalid_value'
          end as reason,
          case
            when c.column_name is null then format('%s has no column %L', e.tbl, left(kv.key, 100))
            when c.is_system then format('%s.%s is written by the server', e.tbl, kv.key)
            when jsonb_typeof(kv.value) = 'null' and c.not_null then format('%s.%s cannot be null', e.tbl, kv.key)
            else format('%s.%s expects %s', e.tbl, kv.key, c.column_type)
          end as message
        from pg_temp.push_events as e
        cross join lateral jsonb_each(e.data) as kv (key, value)
        left join cols as c on c.table_name = e.tbl and c.column_name = kv.key
        where e.status = 'pending' and e.op in ('insert', 'update')
          and (c.column_name is null or c.is_system
               or (jsonb_typeof(kv.value) = 'null' and c.not_null)
               or not {value_check})
        order by e.ord, kv.key
      ),

      missing as (
        select distinct on (e.ord) e.ord, 'missing_column' as reason,
          format('%s.%s is required', e.tbl, c.column_name) as message
        from pg_temp.push_events as e
        inner join cols as c on c.table_name = e.tbl
        where e.status = 'pending' and e.op = 'insert'
          and c.not_null and not c.has_default and not c.is_system and not (e.data ? c.column_name)
        order by e.ord, c.column_name
      )

      update pg_temp.push_events as e
      set status = 'rejected', reason = b.reason, message = b.message
      from (select * from bad union all select * from missing where missing.ord not in (select bad.ord from bad)) as b
      where e.ord = b.ord;
    end;
    $body$
    $fn$,
    '{value_check}', shopsync.value_check_sql('kv.value', 'c.column_type'));
end;
$do$;

-- 5. Record (as in 20261202003000_push_at_scale.sql). Each event's answer is built once: the result
-- stored for an applied, merged or conflict event is its answer, so one statement builds the
-- answers, stores those results (by the batch's keys) and counts; the old form built the stored
-- results and the answers separately (a jsonb object of the batch, then the array).
create or replace function shopsync.push_record(p_shop uuid, p_device_id uuid, p_events jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_results jsonb;
  v_applied bigint;
  v_merged bigint;
  v_conflicts bigint;
  v_rejected bigint;
  v_duplicates bigint;
  v_cursor bigint;
  v_dropped_ids uuid[];
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  update pg_temp.push_events as e
  set status = 'rejected', reason = coalesce(e.reason, 'not_applied')
  where e.status in ('pending', 'go', 'go_merge', 'go_partial', 'stale');

  with own as materialized (
    -- The answer of each event that is not a duplicate (the stored result, for those that keep one).
    select e.ord, e.event_id, e.status,
      jsonb_build_object('event_id', coalesce(to_jsonb(e.event_id), p_events -> (e.ord::int - 1) -> 'event_id'),
        'status', e.status, 'version', e.version, 'reason', e.reason,
        'server_row', e.server_row, 'message', e.message) as answer
    from pg_temp.push_events as e
    where e.dup_of is null and e.status <> 'duplicate'
  ),

  stored as (
    -- Read by the batch's (shop, event_id) keys, one at a time: never the shop's claims.
    update shopsync.push_results as r set result = o.answer
    from own as o
    where r.ctid = any(array(
        select (select x.ctid from shopsync.push_results as x where x.shop_id = p_shop and x.event_id = k.event_id)
        from own as k where k.status in ('applied', 'merged', 'conflict')
      ))
      and r.event_id = o.event_id and o.status in ('applied', 'merged', 'conflict')
  )

  select
    coalesce(jsonb_agg(
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
        else o.answer
      end order by e.ord), '[]'::jsonb),
    count(*) filter (where e.status = 'applied'),
    count(*) filter (where e.status = 'merged'),
    count(*) filter (where e.status = 'conflict'),
    count(*) filter (where e.status = 'rejected'),
    count(*) filter (where e.status in ('duplicate', 'dup_batch')),
    array_agg(e.event_id) filter (where e.status = 'rejected' and e.event_id is not null and e.dup_of is null)
  into v_results, v_applied, v_merged, v_conflicts, v_rejected, v_duplicates, v_dropped_ids
  from pg_temp.push_events as e
  left join own as o on o.ord = e.ord
  left join pg_temp.push_events as f on f.ord = e.dup_of;

  -- After the results: a claim that now holds one is never dropped.
  if v_dropped_ids is not null then
    delete from shopsync.push_results as r
    where r.ctid = any(array(
        select (select x.ctid from shopsync.push_results as x where x.shop_id = p_shop and x.event_id = k.event_id)
        from unnest(v_dropped_ids) as k (event_id)
      ))
      and r.result is null;
  end if;

  insert into shopsync.push_stats as s (shop_id, device_id, day, pushes, applied, merged, conflicts, rejected, duplicates)
  values (p_shop, p_device_id, current_date, 1, v_applied, v_merged, v_conflicts, v_rejected, v_duplicates)
  on conflict (shop_id, day, device_id) do update
  set pushes = s.pushes + 1, applied = s.applied + excluded.applied, merged = s.merged + excluded.merged,
      conflicts = s.conflicts + excluded.conflicts, rejected = s.rejected + excluded.rejected,
      duplicates = s.duplicates + excluded.duplicates;
  update public.devices set last_push_at = now(), last_seen_at = now() where id = p_device_id;

  select c.last_seq into v_cursor from shopsync.shop_cursor as c where c.shop_id = p_shop;
  return jsonb_build_object('results', v_results, 'cursor', v_cursor);
end;
$$;
