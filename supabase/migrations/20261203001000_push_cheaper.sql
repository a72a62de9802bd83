-- A cheaper push (issue 13 items 3 and 4): fewer statements and fewer writes per call, each
-- event's answer built once. Same guarantees, same answers.
--
-- Measured first (bench/profile_push.py and bench/sale.py: pg_stat_statements with track = all and
-- track_planning; docs/performance.md, "A sale, the batch and the fleet"), then changed:
-- * push_stage: a big batch's ANALYZE samples only the columns that steer plans (~6 -> ~1.4 ms at
--   500 events);
-- * push_claim: each claim is written with the result of an event that simply applies, and the
--   insert returns the claims it took, so only the others are looked up (a fresh batch skips the
--   lookup statement);
-- * push_validate: wholly static (the value checks inlined when the function is created, the
--   tables' columns read in its query), so it is planned once per backend, not on every call;
-- * push_classify: the group's rows locked, read and classified in one statement (were three);
-- * push_record: one statement builds each event's answer once, rewrites only the stored results
--   that differ from what the claim holds (a batch that applies rewrites none; each claim was
--   written twice) and counts.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- 1. Stage (as in 20261202003000_push_at_scale.sql). A big batch's ANALYZE samples only the columns
-- the steps filter and join on: the row count (what keeps the plans from nested loops that are
-- quadratic in the batch) comes with any ANALYZE, and the statistics of the event data, messages and
-- server rows (jsonb and text) cost most of it and steer no plan (500 events: ~6 ms -> ~1.4 ms).
create or replace function shopsync.push_stage(p_events jsonb)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_max_row bigint := coalesce((shopsync.config_value('sync_max_row_bytes'))::bigint, 6291456);
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  if to_regclass('pg_temp.push_events') is null then
    -- No index: at each commit the table is emptied (on commit delete rows), and rebuilding an
    -- index then rewrites the table's pg_class row, which invalidates every cached plan over the
    -- table: the steps' static statements would be planned again on every call. Joins on the
    -- batch are hash joins. Room on each page (fillfactor) keeps the status updates on their page.
    create temp table push_events (like shopsync.push_event)
    with (fillfactor = 40) on commit delete rows;
  else
    execute 'delete from pg_temp.push_events';  -- a second push in the same transaction
  end if;

  -- The batch (uuid checks inlined: a function call per value costs more than the check).
  insert into pg_temp.push_events (ord, is_obj, event_id, tbl, op, row_id, base_version, has_base, data,
                                   client_ts, bad_ts, override, status, reason, message, rnd)
  select
    e.ord,
    jsonb_typeof(e.ev) = 'object',
    case when length(k.event_id) = 36 and substr(k.event_id, 9, 1) = '-' and substr(k.event_id, 14, 1) = '-'
      and substr(k.event_id, 19, 1) = '-' and substr(k.event_id, 24, 1) = '-'
      and k.event_id ~ '^[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+$' then k.event_id::uuid end,
    e.ev ->> 'table',
    e.ev ->> 'op',
    case when length(k.row_id) = 36 and substr(k.row_id, 9, 1) = '-' and substr(k.row_id, 14, 1) = '-'
      and substr(k.row_id, 19, 1) = '-' and substr(k.row_id, 24, 1) = '-'
      and k.row_id ~ '^[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+$' then k.row_id::uuid end,
    case when jsonb_typeof(e.ev -> 'base_version') = 'number' and (e.ev ->> 'base_version') ~ '^\d{1,15}$'
      then (e.ev ->> 'base_version')::bigint end,
    coalesce(jsonb_typeof(e.ev -> 'base_version'), 'null') <> 'null',
    case when jsonb_typeof(d.data) = 'object' then d.data end,
    least(coalesce(ts.value, now()), now()),
    coalesce(jsonb_typeof(e.ev -> 'client_ts'), 'null') <> 'null' and ts.value is null,
    coalesce(e.ev -> 'override' = 'true'::jsonb, false),
    -- A row larger than sync_max_row_bytes (its data as jsonb, uncompressed) is refused here.
    case when d.bytes > v_max_row then 'rejected' else 'pending' end,
    case when d.bytes > v_max_row then 'row_too_large' end,
    case when d.bytes > v_max_row then
      format('the row is %s bytes; a row may have at most %s (sync_max_row_bytes)', d.bytes, v_max_row)
    end,
    -- Rounds: the k-th event of a row in this batch is applied in round k, so several events for
    -- one row apply in order while each round stays set-wise.
    row_number() over (partition by e.ev ->> 'table', e.ev ->> 'row_id' order by e.ord)
  from jsonb_array_elements(p_events) with ordinality as e (ev, ord)
  -- The data once per event (each `e.ev -> 'data'` is a copy of it).
  cross join lateral (select e.ev -> 'data' as data) as d0
  cross join lateral (select d0.data, pg_column_size(d0.data) as bytes) as d
  -- uuids in the standard form (hex groups 8-4-4-4-12): hyphens by position and an unbounded
  -- pattern (a bounded `{8}` costs ~10 µs a value in Postgres's regex engine).
  cross join lateral (select e.ev ->> 'event_id' as event_id, e.ev ->> 'row_id' as row_id) as k
  cross join lateral (
    -- The common form (UTC, a day its month has; 29 February aside) is cast directly; anything else
    -- is checked by shopsync.try_timestamptz (~80 µs). (The form stopped at day 28: on the 29th to
    -- 31st of a month every event took the slow check.)
    select case
      when e.ev ->> 'client_ts'
        ~ '^(000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})-((0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z$'
        then (e.ev ->> 'client_ts')::timestamptz
      else shopsync.try_timestamptz(e.ev ->> 'client_ts')
    end as value
    -- (offset 0: computed once per event; flattened, the check and cast ran once per use)
    offset 0
  ) as ts;

  -- The planner needs a big batch's statistics, or it may pick nested loops that are quadratic in
  -- the batch. A small batch needs none (any plan over a few dozen rows is cheap), and ANALYZE costs
  -- a small push more than the rest of its staging: catalog writes (pg_statistic, pg_class) and
  -- every cached plan over the table invalidated.
  if jsonb_array_length(p_events) > 64 then
    analyze pg_temp.push_events (ord, event_id, tbl, op, row_id, status, rnd, dup_of);
  end if;

  -- Shape checks that need no table: each first failing rule names the reason.
  update pg_temp.push_events as e
  set status = 'rejected',
      reason = case
        when not e.is_obj then 'invalid_event'
        when e.event_id is null then 'invalid_event_id'
        when e.op is null or e.op not in ('insert', 'update', 'delete') then 'invalid_op'
        when e.row_id is null then 'invalid_row_id'
        when e.bad_ts then 'invalid_client_ts'
        when e.op in ('insert', 'update') and e.data is null then 'invalid_data'
        when e.op <> 'insert' and e.base_version is null then 'missing_base_version'
        when e.op = 'insert' and e.has_base and e.base_version is null then 'invalid_base_version'
      end
  where not e.is_obj or e.event_id is null or e.op is null or e.op not in ('insert', 'update', 'delete')
    or e.row_id is null or e.bad_ts or (e.op in ('insert', 'update') and e.data is null)
    or (e.op <> 'insert' and e.base_version is null) or (e.op = 'insert' and e.has_base and e.base_version is null);
end;
$$;

-- 2. Claim (as in 20261202003000_push_at_scale.sql). The insert of the claims says which ones it
-- took (RETURNING): only the others (an event_id stored before, or claimed by a concurrent push we
-- waited for) are looked up, so a fresh batch, the common case, skips the lookup statement.
-- Each claim is written with the result the event gets if it simply applies (`applied`, version 1
-- for an insert, base_version + 1 otherwise), and the staged event keeps it (`stored`): push_record
-- rewrites only the results that turned out different, and drops the claims of rejected events.
-- Nobody reads an uncommitted claim, so a committed claim holds the event's final result as before;
-- for a batch that applies, the results are written once instead of twice.
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
    insert into shopsync.push_results (shop_id, event_id, device_id, result)
    select p_shop, e.event_id, p_device_id,
      jsonb_build_object('status', 'applied', 'version', case when e.op = 'insert' then 1 else e.base_version + 1 end)
    from pg_temp.push_events as e where e.status = 'pending'
    order by e.event_id
    on conflict do nothing
    returning event_id, result
  ),

  mine as (
    update pg_temp.push_events as e set stored = t.result
    from taken as t
    where e.event_id = t.event_id and e.status = 'pending'
    returning e.event_id
  )

  select array_agg(e.event_id) into v_ids
  from pg_temp.push_events as e
  where e.status = 'pending' and e.event_id not in (select m.event_id from mine as m);
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
-- sale's push), and the tables' columns are read in it (shopsync.table_columns was called, and its
-- query planned, once per table). Same rules, same answers.
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
      -- The columns of the batch's tables (as shopsync.table_columns reads them; inlined, so the
      -- catalog query is planned with this one, once per backend, not once per table and call).
      with cols as (
        select st.table_name, c.*
        from shopsync.synced_tables as st
        -- (lateral, not flattened: each table's columns read by its oid on the catalog's index; a
        -- flattened join hashed every column of the database)
        cross join lateral (
          select
            a.attname::text as column_name,
            pg_catalog.format_type(a.atttypid, a.atttypmod) as column_type,
            a.attnotnull as not_null,
            d.adbin is not null as has_default,
            a.attname = any (shopsync.system_columns()) as is_system
          from pg_catalog.pg_attribute as a
          left join pg_catalog.pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
          where a.attrelid = ('public.' || quote_ident(st.table_name))::regclass and a.attnum > 0 and not a.attisdropped
          offset 0
        ) as c
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

-- 5. Record (as in 20261202003000_push_at_scale.sql). One statement builds each event's answer once,
-- rewrites the stored results that differ from what the claim holds (push_claim wrote the result of
-- an event that simply applies) and counts; the old form built every result (a jsonb object of the
-- batch), updated every claim with it, then built the answers again. A stored result holds the
-- answer's status, version and, when any is set, reason, server_row and message (its event_id is
-- the row's key); a replay's answer is built from it with every key.
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
    -- The answer of each event that is not a duplicate, and the result to store for those that
    -- keep one (applied, merged, conflict) where the claim holds another.
    select e.ord, e.event_id, e.status,
      jsonb_build_object('event_id', coalesce(to_jsonb(e.event_id), p_events -> (e.ord::int - 1) -> 'event_id'),
        'status', e.status, 'version', e.version, 'reason', e.reason,
        'server_row', e.server_row, 'message', e.message) as answer,
      case when e.status in ('applied', 'merged', 'conflict') then
        case when e.reason is null and e.server_row is null and e.message is null
          then jsonb_build_object('status', e.status, 'version', e.version)
          else jsonb_build_object('status', e.status, 'version', e.version, 'reason', e.reason,
            'server_row', e.server_row, 'message', e.message)
        end
      end as result,
      e.stored
    from pg_temp.push_events as e
    where e.dup_of is null and e.status <> 'duplicate'
  ),

  stored as (
    -- Read by the batch's (shop, event_id) keys, one at a time: never the shop's claims.
    update shopsync.push_results as r set result = o.result
    from own as o
    where r.ctid = any(array(
        select (select x.ctid from shopsync.push_results as x where x.shop_id = p_shop and x.event_id = k.event_id)
        from own as k where k.result is distinct from k.stored and k.result is not null
      ))
      and r.event_id = o.event_id and o.result is distinct from o.stored and o.result is not null
  )

  select
    coalesce(jsonb_agg(
      case
        when e.status = 'duplicate' then
          jsonb_build_object('event_id', e.event_id, 'status', 'duplicate', 'original_status', e.stored ->> 'status',
            'version', e.stored -> 'version', 'reason', e.stored -> 'reason', 'server_row', e.stored -> 'server_row',
            'message', e.stored -> 'message')
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

  -- The claims of rejected events: those this push took (they hold what push_claim wrote, which the
  -- staged event kept), and claims without a result; never another push's result.
  if v_dropped_ids is not null then
    delete from shopsync.push_results as r
    using pg_temp.push_events as e
    where r.ctid = any(array(
        select (select x.ctid from shopsync.push_results as x where x.shop_id = p_shop and x.event_id = k.event_id)
        from unnest(v_dropped_ids) as k (event_id)
      ))
      and e.event_id = r.event_id and e.status = 'rejected' and e.dup_of is null
      and (r.result is null or r.result = e.stored);
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

-- 4a. Classify (as in 20261202003000_push_at_scale.sql), in one statement: the group's rows are
-- locked (in key order) and read by the batch's keys, and each event classified against them, where
-- three statements did it (lock, read into the batch, classify): one dynamic statement fewer to plan
-- per table and call, and one rewrite fewer of each staged event.
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
  select array_agg(p.row_id order by p.row_id) into v_ids from pg_temp.push_events as p
  where p.tbl = p_table and p.rnd = p_round and p.status = 'pending';
  if v_ids is null then
    return 0;
  end if;
  -- Current state of the rows, locked (in key order); classified against the current version; the
  -- answer is how many are stale.
  execute format($q$
    with cur as materialized (
      select x.id, x.version, x.shop_id, x.deleted_at from public.%1$I as x
      where x.id = any($3) order by x.id for update
    ),

    classified as (
      update pg_temp.push_events as e
      set cur_version = c.version, cur_shop = c.shop_id,
          cur_deleted = case when c.id is not null then c.deleted_at is not null end,
          status = case
            when e.op = 'insert' and c.version is not null then 'conflict'
            when e.op = 'insert' then 'go'
            when c.version is null or c.shop_id <> $4 then 'rejected'
            when c.deleted_at is not null then 'conflict'
            when e.base_version > c.version then 'rejected'
            when e.base_version = c.version then 'go'
            else 'stale'
          end,
          reason = case
            when e.op = 'insert' and c.version is not null then 'id_exists'
            when e.op = 'insert' then null
            when c.version is null or c.shop_id <> $4 then 'not_found'
            when c.deleted_at is not null then 'row_deleted'
            when e.base_version > c.version then 'invalid_base_version'
          end,
          message = case
            when e.op <> 'insert' and (c.version is null or c.shop_id <> $4)
              then format('%%s has no row %%s', e.tbl, e.row_id)
            when e.op <> 'insert' and c.deleted_at is null and e.base_version > c.version
              then format('base_version %%s is ahead of the server''s %%s', e.base_version, c.version)
          end
      from pg_temp.push_events as e2
      left join cur as c on c.id = e2.row_id
      where e2.ord = e.ord and e2.tbl = $1 and e2.rnd = $2 and e2.status = 'pending'
        and e.tbl = $1 and e.rnd = $2 and e.status = 'pending'
      returning e.status
    )

    select count(*) from classified where classified.status = 'stale'
  $q$, p_table) into v_stale using p_table, p_round, v_ids, p_shop;
  return v_stale;
end;
$$;
