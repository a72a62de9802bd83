-- Push at scale (issue 13), in two parts: (A) the backlog cliff's last statements, (B) cheaper per
-- event and per call. Same guarantees throughout.
--
-- (A) The backlog cliff's last statements. Migration 20261201004000 made every
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
--
-- (B) Cheaper per event and per call (issue 13 items 3-4).
--
-- Measured first (pg_stat_statements with track = all; bench/profile_push.py, bench/sale.py), then
-- changed:
-- * uuid checks without bounded repetition: `~* '^[0-9a-f]{8}-...{12}$'` costs ~10 µs a value in
--   Postgres's regex engine (its automaton grows with each {n}); two per staged event, one per uuid
--   value in validation. The same form (hex groups 8-4-4-4-12) is now checked by the hyphens'
--   positions and an unbounded pattern, inlined (a function with a SET clause is not inlined).
--   The integer and numeric checks likewise (`\d{1,30}` -> `\d+` and a length check: the same
--   strings pass).
-- * client timestamps: the fast form (cast directly) stopped at day 28, so on the 29th to 31st of
--   every month each event took shopsync.try_timestamptz (~80 µs); it now covers every day a month
--   has (29 February aside), in staging and in the value checks of timestamp columns.
-- * staging reads each event's data once (each `e.ev -> 'data'` copied it; it was read five times);
-- * ANALYZE of the staged batch only for batches over 64 events: for a small push it cost more than
--   the rest of staging (catalog writes, and every cached plan over the table invalidated);
-- * push_write's statements (insert and update of a table, built from its columns by a loop of
--   format() calls, ~0.5 ms a table) are kept in shopsync.push_write_sql keyed by a digest of the
--   table's column definitions: a changed table gets new statements on its next push;
-- * the staged batch (pg_temp.push_events) has no index, and the statements over it alone are
--   static SQL: planned once per backend instead of on every call (see push_stage).

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

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

-- The insert and update statements of push_write per synced table, for the column set they were
-- built from (written by push_write_statements only; read by no API role).
create table shopsync.push_write_sql (
  table_name text primary key,
  columns_md5 text not null,
  insert_sql text not null,
  update_sql text not null
);

-- The value checks of push validation (and of invoice lines), inlined into their queries.
create or replace function shopsync.value_check_sql(p_value text, p_type text)
returns text
language sql
immutable
set search_path = ''
as $$
  select replace(replace($check$(case
    when $v is null or jsonb_typeof($v) = 'null' then true
    when $t = 'text' or $t like 'character varying%' then
      jsonb_typeof($v) = 'string' and length($v #>> '{}') <= 10000
    when $t = 'uuid' then
      jsonb_typeof($v) = 'string'
      and length($v #>> '{}') = 36 and substr($v #>> '{}', 9, 1) = '-' and substr($v #>> '{}', 14, 1) = '-'
      and substr($v #>> '{}', 19, 1) = '-' and substr($v #>> '{}', 24, 1) = '-'
      and ($v #>> '{}') ~ '^[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+-[0-9a-fA-F]+$'
    when $t = 'boolean' then jsonb_typeof($v) = 'boolean'
    when $t in ('smallint', 'integer', 'bigint') then
      case
        when jsonb_typeof($v) <> 'number' or ($v #>> '{}') !~ '^-?\d+$' or length(ltrim($v #>> '{}', '-')) > 19 then false
        else ($v #>> '{}')::numeric between
          (case $t when 'smallint' then -32768 when 'integer' then -2147483648 else -9223372036854775808 end)
          and (case $t when 'smallint' then 32767 when 'integer' then 2147483647 else 9223372036854775807 end)
      end
    when $t like 'numeric%' then
      case
        when jsonb_typeof($v) not in ('number', 'string') then false
        when ($v #>> '{}') !~ '^-?\d+(\.\d+)?$' or length(split_part(ltrim($v #>> '{}', '-'), '.', 1)) > 30
          or length(split_part($v #>> '{}', '.', 2)) > 30 then false
        when $t not like 'numeric(%,%)' then true
        -- numeric(p,s): fits without rounding (p and s read by position from the type text)
        else round(($v #>> '{}')::numeric, rtrim(split_part($t, ',', 2), ')')::int) = ($v #>> '{}')::numeric
          and abs(($v #>> '{}')::numeric) < 10::numeric ^ (
            split_part(substr($t, 9), ',', 1)::int - rtrim(split_part($t, ',', 2), ')')::int
          )
      end
    when $t in ('timestamp with time zone', 'timestamp without time zone', 'date') then
      -- The common UTC form passes without the slow check (which accepts it too).
      jsonb_typeof($v) = 'string' and (
        ($v #>> '{}')
        ~ '^(000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})-((0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z$'
        or shopsync.try_timestamptz($v #>> '{}') is not null
      )
    -- Floating point: within the type's range (a number it would round to 0 or infinity is refused).
    when $t = 'real' then
      jsonb_typeof($v) = 'number' and (($v #>> '{}')::numeric = 0
        or abs(($v #>> '{}')::numeric) between 1.175494351e-38 and 3.4028234e38)
    when $t = 'double precision' then
      jsonb_typeof($v) = 'number' and (($v #>> '{}')::numeric = 0
        or abs(($v #>> '{}')::numeric) between 2.2250738585072014e-308 and 1.7976931348623157e308)
    when $t in ('json', 'jsonb') then true
    -- Any other type: the database decides when the batch is applied.
    else jsonb_typeof($v) in ('string', 'number', 'boolean')
  end)$check$, '$v', p_value), '$t', p_type)
$$;

-- 1. Stage.
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
    analyze pg_temp.push_events;
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

-- 4c, its statements, kept per column set.
create or replace function shopsync.push_write_statements(p_table text, out insert_sql text, out update_sql text)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_sig text;
  v_cols record;
  v_ins_cols text := '';
  v_ins_vals text := '';
  v_upd_sets text := '';
begin
  -- The statements are a function of the table's columns: built once per column set, then read.
  -- The column set's digest: a pg_attribute row changes (a new xmin) with every add, drop, rename,
  -- type or nullability change, and a default is a pg_attrdef row of its own (static SQL: planned
  -- once per backend, unlike shopsync.table_columns).
  select md5(min(a.attrelid::text) || ':' || string_agg(
    a.attnum::text || '.' || a.xmin::text || '.' || coalesce(d.oid::text, ''), ',' order by a.attnum
  ))
  into v_sig
  from pg_catalog.pg_attribute as a
  left join pg_catalog.pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
  where a.attrelid = ('public.' || quote_ident(p_table))::regclass and a.attnum > 0;
  select s.insert_sql, s.update_sql into insert_sql, update_sql
  from shopsync.push_write_sql as s where s.table_name = p_table and s.columns_md5 = v_sig;
  if found then
    return;
  end if;
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
  insert into shopsync.push_write_sql as s (table_name, columns_md5, insert_sql, update_sql)
  values (p_table, v_sig, insert_sql, update_sql)
  on conflict (table_name) do update
  set columns_md5 = excluded.columns_md5, insert_sql = excluded.insert_sql, update_sql = excluded.update_sql;
end;
$$;

-- Per call: the statements over the staged batch alone (pg_temp.push_events, no table name to
-- format in) are static SQL now, so each backend plans them once and reuses the plan (plpgsql's plan
-- cache) instead of parsing and planning them on every call (EXECUTE): about 25 statements of a
-- 4-table sale. A big batch's ANALYZE invalidates those plans (it changes the table's statistics),
-- so a big batch is still planned with its own statistics. The statements that name a synced table
-- stay dynamic.

-- 0. The driver (as in 20261201003000_insiders_fair_use.sql), rounds and tables read statically.
create or replace function shopsync.push(p_device_id uuid, p_events jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
as $$
declare
  v_shop uuid;
  v_role text;
  v_max int := coalesce((shopsync.config_value('push_max_events'))::int, 1000);
  v_rounds int;
  v_t record;
  v_state text;
  v_msg text;
begin
  select rd.shop_id, rd.role into v_shop, v_role from shopsync.require_device(p_device_id, true) as rd;
  if not exists (select 1 from public.licenses as l where l.shop_id = v_shop and l.valid_until > now()) then
    raise exception 'the shop''s licence has expired; pushes are refused until it is renewed (pulls continue)'
      using errcode = 'PT402', detail = 'licence_expired';
  end if;
  if p_events is null or jsonb_typeof(p_events) <> 'array' then
    raise exception 'p_events must be a JSON array of events'
      using errcode = 'PT400', detail = 'invalid_payload';
  end if;
  if jsonb_array_length(p_events) > v_max then
    raise exception 'a push carries at most % events; this one has %', v_max, jsonb_array_length(p_events)
      using errcode = 'PT400', detail = 'batch_too_large';
  end if;
  -- One push per device at a time (after require_device: nobody can make another shop's device
  -- look busy). A second one is answered now, not queued behind the first on a connection.
  if not pg_try_advisory_xact_lock(shopsync.push_lock_key(p_device_id)) then
    raise exception 'device % is already pushing; retry when that push has answered', p_device_id
      using errcode = 'PT429', detail = 'push_in_progress', hint = 'retry after a short back-off';
  end if;
  -- Counted before the work, outside its subtransaction: a push whose work fails still counts.
  perform shopsync.check_push_rate(p_device_id);
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  perform set_config('shopsync.device_id', p_device_id::text, true);
  perform set_config('shopsync.in_push', 'on', true);

  begin
    perform shopsync.push_stage(p_events);
    perform shopsync.push_claim(v_shop, p_device_id);
    perform shopsync.push_validate(v_role);
    perform shopsync.push_scope(v_shop);

    -- Rounds (numbered at staging): the k-th event of a row applies in round k; within a round,
    -- tables in apply order.
    select coalesce(max(x.rnd), 0) into v_rounds from pg_temp.push_events as x where x.status = 'pending';
    for r in 1..v_rounds loop
      for v_t in
        select st.table_name, st.policy, st.validator
        from shopsync.synced_tables as st
        where st.table_name in (select x.tbl from pg_temp.push_events as x where x.rnd = r and x.status = 'pending')
        order by st.apply_order, st.table_name
      loop
        perform shopsync.push_apply_table(v_shop, v_role, p_device_id, v_t.table_name, v_t.policy, v_t.validator, r);
      end loop;
    end loop;

    return shopsync.push_record(v_shop, p_device_id, p_events);
  exception
    when query_canceled or lock_not_available or deadlock_detected or serialization_failure
      or program_limit_exceeded or insufficient_resources then
      get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
      return shopsync.call_failed(v_state, v_msg);
  end;
end;
$$;

-- 4a. Classify (as in 20261201004000_push_lookups_by_batch_keys.sql), its batch statements static.
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
  with classified as (
    update pg_temp.push_events as e
    set status = case
          when e.op = 'insert' and e.cur_version is not null then 'conflict'
          when e.op = 'insert' then 'go'
          when e.cur_version is null or e.cur_shop <> p_shop then 'rejected'
          when e.cur_deleted then 'conflict'
          when e.base_version > e.cur_version then 'rejected'
          when e.base_version = e.cur_version then 'go'
          else 'stale'
        end,
        reason = case
          when e.op = 'insert' and e.cur_version is not null then 'id_exists'
          when e.op = 'insert' then null
          when e.cur_version is null or e.cur_shop <> p_shop then 'not_found'
          when e.cur_deleted then 'row_deleted'
          when e.base_version > e.cur_version then 'invalid_base_version'
        end,
        message = case
          when e.op <> 'insert' and (e.cur_version is null or e.cur_shop <> p_shop)
            then format('%s has no row %s', e.tbl, e.row_id)
          when e.op <> 'insert' and not e.cur_deleted and e.base_version > e.cur_version
            then format('base_version %s is ahead of the server''s %s', e.base_version, e.cur_version)
        end
    where e.tbl = p_table and e.rnd = p_round and e.status = 'pending'
    returning e.status
  )
  select count(*) into v_stale from classified where classified.status = 'stale';
  return v_stale;
end;
$$;

-- 4c. Write (as in 20261122000500_push.sql), its batch statements static; an insert that lost a race
-- for its id to another shop's then uncommitted insert answers as for another shop's id (the
-- residual risk of docs/security.md, "A push race across shops", closed).
create or replace function shopsync.push_write(p_shop uuid, p_table text, p_round int)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_ev record;
  v_insert_sql text;
  v_update_sql text;
  v_state text;
  v_msg text;
  v_constraint text;
  v_taken_elsewhere boolean;
  v_n_ins bigint;
  v_n_upd bigint;
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  select ws.insert_sql, ws.update_sql into v_insert_sql, v_update_sql
  from shopsync.push_write_statements(p_table) as ws;

  -- Only the statements the group needs (an empty update still costs a join with the table).
  select count(*) filter (where e.op = 'insert' and e.status = 'go'),
         count(*) filter (where e.op <> 'insert' and e.status in ('go', 'go_merge', 'go_partial'))
  into v_n_ins, v_n_upd
  from pg_temp.push_events as e where e.tbl = p_table and e.rnd = p_round;
  begin
    if v_n_ins > 0 then
      execute v_insert_sql using p_table, p_round, p_shop, null::int;
    end if;
    if v_n_upd > 0 then
      execute v_update_sql using p_table, p_round, p_shop, null::int;
    end if;
  exception when others then
    -- The rare case: a rule only the table knows (a check, a reference) failed for some event.
    -- Apply the group one event at a time so only the culprits are rejected.
    for v_ev in
      execute $q$
        select e.ord, e.op, e.row_id from pg_temp.push_events as e
        where e.tbl = $1 and e.rnd = $2 and e.status in ('go', 'go_merge', 'go_partial') order by e.ord
      $q$ using p_table, p_round
    loop
      begin
        if v_ev.op = 'insert' then
          execute v_insert_sql using p_table, p_round, p_shop, v_ev.ord;
        else
          execute v_update_sql using p_table, p_round, p_shop, v_ev.ord;
        end if;
      exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text,
          v_constraint = constraint_name;
        -- A racing insert of the same id (primary key) is a conflict; anything else a rejection.
        -- The racing row may be another shop's, committed while this insert waited on the unique
        -- index: then the answer is the one for another shop's id (push_scope), not id_exists.
        v_taken_elsewhere := false;
        if v_state = '23505' and v_ev.op = 'insert' and v_constraint like '%\_pkey' then
          execute format(
            'select exists (select from public.%I as x where x.id = $1 and x.shop_id is distinct from $2)', p_table
          ) into v_taken_elsewhere using v_ev.row_id, p_shop;
        end if;
        if v_taken_elsewhere then
          update pg_temp.push_events as e
          set status = 'rejected', reason = 'id_unavailable',
              message = format('%s: id %s is unavailable; insert the row under a new id', e.tbl, e.row_id)
          where e.ord = v_ev.ord;
        else
          execute $q$
            update pg_temp.push_events
            set status = case when $4 then 'conflict' else 'rejected' end,
                reason = case when $4 then 'id_exists' else shopsync.reason_for_sqlstate($2) end,
                message = $3
            where ord = $1
          $q$ using v_ev.ord, v_state, v_msg, (v_state = '23505' and v_ev.op = 'insert' and v_constraint like '%\_pkey');
        end if;
      end;
    end loop;
  end;

  -- What was applied: the group's statements succeeded, or the fallback rejected the rest.
  update pg_temp.push_events as e
  set status = case e.status when 'go' then 'applied' when 'go_merge' then 'merged' else 'conflict' end,
      version = case when e.op = 'insert' then 1 else e.cur_version + 1 end
  where e.tbl = p_table and e.rnd = p_round and e.status in ('go', 'go_merge', 'go_partial');
end;
$$;

-- 4d. Conflicts' server rows (read by the batch's keys: part A), the batch statement static.
create or replace function shopsync.push_attach_server_rows(p_shop uuid, p_table text, p_round int)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_ids uuid[];
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  select array_agg(e.row_id) into v_ids
  from pg_temp.push_events as e where e.tbl = p_table and e.rnd = p_round and e.status = 'conflict';
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

-- 5. Record (read by the batch's keys: part A), its batch statements static.
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
  update pg_temp.push_events as e
  set status = 'rejected', reason = coalesce(e.reason, 'not_applied')
  where e.status in ('pending', 'go', 'go_merge', 'go_partial', 'stale');
  -- The results to store, keyed by event_id, and the claims of rejected events to drop.
  select
    jsonb_object_agg(e.event_id::text, jsonb_build_object(
        'event_id', e.event_id, 'status', e.status, 'version', e.version, 'reason', e.reason,
      'server_row', e.server_row, 'message', e.message))
      filter (where e.status in ('applied', 'merged', 'conflict')),
    array_agg(e.event_id) filter (where e.status in ('applied', 'merged', 'conflict')),
    array_agg(e.event_id) filter (where e.status = 'rejected' and e.event_id is not null)
  into v_fin, v_fin_ids, v_dropped_ids
  from pg_temp.push_events as e
  where e.dup_of is null;
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
        jsonb_build_object('event_id', coalesce(to_jsonb(e.event_id), p_events -> (e.ord::int - 1) -> 'event_id'),
          'status', e.status, 'version', e.version, 'reason', e.reason,
          'server_row', e.server_row, 'message', e.message)
    end order by e.ord), '[]'::jsonb)
  into v_results
  from pg_temp.push_events as e
  left join pg_temp.push_events as f on f.ord = e.dup_of;

  select
    count(*) filter (where e.status = 'applied') as applied,
    count(*) filter (where e.status = 'merged') as merged,
    count(*) filter (where e.status = 'conflict') as conflicts,
    count(*) filter (where e.status = 'rejected') as rejected,
    count(*) filter (where e.status in ('duplicate', 'dup_batch')) as duplicates
  into v_counts
  from pg_temp.push_events as e;

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

-- 2. Claim (read by the batch's keys: part A), its statements static.
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
  insert into shopsync.push_results (shop_id, event_id, device_id)
  select p_shop, e.event_id, p_device_id from pg_temp.push_events as e where e.status = 'pending'
  order by e.event_id
  on conflict do nothing;
  -- A new statement, so a new snapshot: it sees results committed by a concurrent retry we waited
  -- for. Our own fresh claims have no result yet.
  -- Read by the batch's (shop, event_id) keys: never the shop's claims (see the head of this file).
  select array_agg(e.event_id) into v_ids from pg_temp.push_events as e where e.status = 'pending';
  if v_ids is null then
    return;
  end if;
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

-- 3. Validate (as in 20261122000500_push.sql), the table-level rules static (the column and value
-- rules stay dynamic: their value checks are inlined from shopsync.value_check_sql).
create or replace function shopsync.push_validate(p_role text)
returns void
language plpgsql
set search_path = ''
as $$
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

  -- Columns and values, checked against the catalog (the value check is inlined: see
  -- shopsync.value_check_sql).
  execute replace($q$
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
    where e.ord = b.ord
  $q$, '{value_check}', shopsync.value_check_sql('kv.value', 'c.column_type'));
end;
$$;

-- Invoice lines (as in 20261122001100_invoices.sql): the same query, with the same value checks,
-- but static: the function is created here with the checks' text inlined, so its query is planned
-- once per backend. (It built the query text and ran it with EXECUTE on every invoice, ~2 ms: a
-- fifth of a sale's push.)
do $do$
begin
  execute format(
    $fn$
    create or replace function shopsync.invoice_lines_valid(p_lines jsonb)
    returns boolean
    language plpgsql
    immutable
    set search_path = ''
    as $body$
    begin
      if jsonb_typeof(p_lines) is distinct from 'array' or jsonb_array_length(p_lines) not between 1 and 500 then
        return false;
      end if;
      return not exists (
        select 1 from jsonb_array_elements(p_lines) as l (value)
        where jsonb_typeof(l.value) <> 'object'
          or l.value ->> 'description' is null or l.value ->> 'quantity' is null
          or l.value ->> 'unit_price' is null or l.value ->> 'tax_rate' is null
          or not %s or not %s or not %s or not %s or not %s
      );
    end;
    $body$
    $fn$,
    shopsync.value_check_sql('(l.value -> ''description'')', '''text'''),
    shopsync.value_check_sql('(l.value -> ''quantity'')', '''numeric(12,3)'''),
    shopsync.value_check_sql('(l.value -> ''unit_price'')', '''numeric(12,2)'''),
    shopsync.value_check_sql('(l.value -> ''tax_rate'')', '''numeric(5,2)'''),
    shopsync.value_check_sql('(l.value -> ''product_id'')', '''uuid''')
  );
end;
$do$;

-- Privileges of this capability's objects.
revoke all on shopsync.push_write_sql from public, anon, authenticated, service_role;
