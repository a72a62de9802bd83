-- A sale is cheap (issue 13 item 4): less fixed cost per push call. Same guarantees, same answers,
-- byte-identical hashes.
--
-- Measured first (bench/sale.py --statements: pg_stat_statements with track = all and
-- track_planning; track_functions = all; perf of the backend), then changed:
-- * shopsync.canonical_json (checksum upkeep of json columns: an invoice's lines) called itself
--   once per value (25 calls per invoice, each a query planned anew: a custom plan per call); it
--   now builds a value and two levels below it in one query (an array of objects of scalars: one
--   call), and calls itself only for values nested deeper. Same text.
-- * push_classify: the statement that names the table (parsed and planned on every call: dynamic
--   SQL) only locks and reads the group's rows, by the batch's keys, into arrays; the classification
--   is a static statement over them, planned once per backend.
-- * push_scope: likewise, one read per table (the batch's ids held by another shop) and a static
--   update, run only when there is such an id (never, for a till's sale).
-- * Those reads, and the call of a table's validator, are static too: functions generated from
--   shopsync.synced_tables with one branch per table (shopsync.build_push_readers, rebuilt by
--   register_table through a trigger; a table without a branch takes the dynamic statement).
-- * validate_orders: its two statements were EXECUTEd constant strings; now static.
-- * The invoice hash functions (invoice_hash, invoice_canonical_v2, invoice_row_hash): PL/pgSQL
--   with the same expressions; as SQL functions with a SET clause they were parsed and planned
--   again for each invoice.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Canonical JSON (as in 20261203002000_hot_helpers_planned_once.sql): object keys sorted by code
-- point, no whitespace, numbers without trailing zeros.
create or replace function shopsync.canonical_json(p_value jsonb)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
begin
  if jsonb_typeof(p_value) = 'number' then
    return trim_scale(p_value::numeric)::text;
  elsif jsonb_typeof(p_value) not in ('object', 'array') then
    return p_value::text;
  end if;
  -- One query for the value and two levels below it (an invoice's lines, an array of objects of
  -- scalars, in one call); a value nested deeper is a recursive call. Members of an object are
  -- ordered by key (code point), elements of an array by position (their key is null).
  return (
    select
      case jsonb_typeof(p_value) when 'object' then '{' else '[' end
      || coalesce(string_agg(coalesce(to_jsonb(e.key)::text || ':', '') || case jsonb_typeof(e.value)
        when 'number' then trim_scale(e.value::numeric)::text
        when 'object' then '{' || coalesce((
          select string_agg(to_jsonb(g.key)::text || ':' || case
            when jsonb_typeof(g.value) = 'number' then trim_scale(g.value::numeric)::text
            when jsonb_typeof(g.value) in ('object', 'array') then shopsync.canonical_json(g.value)
            else g.value::text
          end, ',' order by g.key collate "C")
          from jsonb_each(e.value) as g (key, value)
        ), '') || '}'
        when 'array' then '[' || coalesce((
          select string_agg(case
            when jsonb_typeof(g.value) = 'number' then trim_scale(g.value::numeric)::text
            when jsonb_typeof(g.value) in ('object', 'array') then shopsync.canonical_json(g.value)
            else g.value::text
          end, ',' order by g.n)
          from jsonb_array_elements(e.value) with ordinality as g (value, n)
        ), '') || ']'
        else e.value::text
      end, ',' order by e.key collate "C", e.n), '')
      || case jsonb_typeof(p_value) when 'object' then '}' else ']' end
    from (
      select o.key, o.value, null::bigint as n
      from jsonb_each(case when jsonb_typeof(p_value) = 'object' then p_value else '{}'::jsonb end) as o (key, value)
      union all
      select null, a.value, a.n
      from jsonb_array_elements(case when jsonb_typeof(p_value) = 'array' then p_value else '[]'::jsonb end)
        with ordinality as a (value, n)
    ) as e
  );
end;
$$;

-- Static reads per synced table. The statements that name a synced table were dynamic SQL (EXECUTE
-- format(...)): parsed and planned on every call, ~0.1 ms each for a one-line read by the batch's
-- keys, four to nine of them per sale. These functions hold one static branch per synced table
-- (planned once per backend, like any PL/pgSQL statement), generated from shopsync.synced_tables
-- by shopsync.build_push_readers: when the table set changes (register_table), a trigger rebuilds
-- them; a table without a branch (say, registered in this transaction before the rebuild) takes the
-- dynamic statement, with the same answer. They read only the system columns every synced table has
-- (id, version, shop_id, deleted_at), so a column change needs no rebuild; a dropped table's
-- branch is never reached (its name is no longer synced) and a statement is parsed only when it runs.
--   push_current_rows: the group's rows, locked in key order (push_classify);
--   push_taken_ids: the batch's ids another shop holds (push_scope);
--   push_run_validator: a table's validator (push_apply_table);
--   push_insert_rows: the insert of a group (push_write): the statement shopsync.push_write_sql holds
--   for the table's columns when the branch was built; the digest of those columns is kept in
--   shopsync.push_static_inserts, and push takes the branch only while the table's columns still
--   give that digest: a table altered since takes the dynamic statement until the next rebuild.
--   (The digest stays out of the function's text: it holds transaction ids, which differ between
--   databases with the same schema.)
create table shopsync.push_static_inserts (
  table_name text primary key,
  columns_md5 text not null
);
comment on table shopsync.push_static_inserts is
'Per synced table: the column digest (as in push_write_sql) its static insert in shopsync.push_insert_rows was '
'built for (written by build_push_readers only; read by no API role).';

create or replace function shopsync.build_push_readers()
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_rows text;
  v_taken text;
  v_validators text;
  v_inserts text;
begin
  select
    coalesce(string_agg(format($b$
      if p_table = %1$L then
        select array_agg(c.id), array_agg(c.version), array_agg(c.shop_id), array_agg(c.deleted_at is not null)
        into ids, versions, shops, deleted
        from (
          select x.id, x.version, x.shop_id, x.deleted_at from public.%1$I as x where x.id = any(p_ids) order by x.id for update
        ) as c;
        return;
      end if;$b$, st.table_name), '' order by st.table_name), ''),
    coalesce(string_agg(format($b$
      if p_table = %1$L then
        return (select array_agg(x.id) from public.%1$I as x where x.id = any(p_ids) and x.shop_id <> p_shop);
      end if;$b$, st.table_name), '' order by st.table_name), ''),
    coalesce(string_agg(distinct format($b$
      if p_validator = %1$L then
        perform %1$s(p_shop, p_role, p_round);
        return;
      end if;$b$, st.validator), ''), '')
  into v_rows, v_taken, v_validators
  from shopsync.synced_tables as st
  where to_regclass('public.' || quote_ident(st.table_name)) is not null;

  -- The insert statements as push_write builds them (shopsync.push_write_sql, refreshed here), and
  -- the column digest each was built for. ($1 to $4 in them are the generated function's four
  -- parameters.)
  perform shopsync.push_write_statements(st.table_name)
  from shopsync.synced_tables as st
  where to_regclass('public.' || quote_ident(st.table_name)) is not null;
  delete from shopsync.push_static_inserts;
  insert into shopsync.push_static_inserts (table_name, columns_md5)
  select w.table_name, w.columns_md5
  from shopsync.push_write_sql as w
  inner join shopsync.synced_tables as st on st.table_name = w.table_name
  where to_regclass('public.' || quote_ident(st.table_name)) is not null;
  select coalesce(string_agg(format($b$
      if p_table = %1$L then
        %2$s;
        return true;
      end if;$b$, w.table_name, w.insert_sql), '' order by w.table_name), '')
  into v_inserts
  from shopsync.push_write_sql as w
  inner join shopsync.push_static_inserts as s on s.table_name = w.table_name;

  execute format($f$
    create or replace function shopsync.push_current_rows(
      p_table text, p_ids uuid[], out ids uuid[], out versions bigint[], out shops uuid[], out deleted boolean[]
    )
    language plpgsql
    set search_path = ''
    as $body$
    begin%s
      execute format(
        'select array_agg(c.id), array_agg(c.version), array_agg(c.shop_id), array_agg(c.deleted_at is not null) '
        'from (select x.id, x.version, x.shop_id, x.deleted_at from public.%%I as x where x.id = any($1) '
        'order by x.id for update) as c', p_table
      ) into ids, versions, shops, deleted using p_ids;
    end;
    $body$
  $f$, v_rows);
  execute format($f$
    create or replace function shopsync.push_taken_ids(p_table text, p_ids uuid[], p_shop uuid)
    returns uuid[]
    language plpgsql
    set search_path = ''
    as $body$
    declare
      v_taken uuid[];
    begin%s
      execute format('select array_agg(x.id) from public.%%I as x where x.id = any($1) and x.shop_id <> $2', p_table)
      into v_taken using p_ids, p_shop;
      return v_taken;
    end;
    $body$
  $f$, v_taken);
  execute format($f$
    create or replace function shopsync.push_run_validator(p_validator text, p_shop uuid, p_role text, p_round int)
    returns void
    language plpgsql
    set search_path = ''
    as $body$
    begin%s
      execute format('select %%s($1, $2, $3)', p_validator) using p_shop, p_role, p_round;
    end;
    $body$
  $f$, v_validators);
  execute format($f$
    create or replace function shopsync.push_insert_rows(p_table text, p_round int, p_shop uuid, p_ord int)
    returns boolean
    language plpgsql
    set search_path = ''
    as $body$
    begin
      perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check%s
      return false;
    end;
    $body$
  $f$, v_inserts);
  revoke execute on function shopsync.push_current_rows(text, uuid[]) from public, anon, authenticated, service_role;
  revoke execute on function shopsync.push_insert_rows(text, int, uuid, int)
  from public, anon, authenticated, service_role;
  revoke execute on function shopsync.push_taken_ids(text, uuid[], uuid) from public, anon, authenticated, service_role;
  revoke execute on function shopsync.push_run_validator(text, uuid, text, int)
  from public, anon, authenticated, service_role;
end;
$$;

create or replace function shopsync.on_synced_tables_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform shopsync.build_push_readers();
  return null;
end;
$$;

select shopsync.build_push_readers();

create or replace trigger push_readers_on_register after insert or update or delete on shopsync.synced_tables
for each statement execute function shopsync.on_synced_tables_changed();

-- 0. The driver (as in 20261202003000_push_at_scale.sql): a small push's statements on generic plans;
-- the column digests of the batch's tables read once (for push_write).
create or replace function shopsync.push(p_device_id uuid, p_events jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
set plan_cache_mode = auto
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
  -- A small push (a till's sale) runs every static statement on a generic plan, planned once per
  -- backend: under `auto`, a statement whose parameter is a constant the planner can use (a
  -- jsonb value, an id array of known length) gets a custom plan on every call, since a plan for
  -- the actual values always looks cheaper (~1/3 of a sale's CPU was planning). A batch of more than
  -- 64 events is analyzed at staging (push_stage) and keeps `auto`: its plans follow its size. (The
  -- function's SET clause restores the mode when the push returns.)
  if jsonb_typeof(p_events) = 'array' and jsonb_array_length(p_events) <= 64 then
    perform set_config('plan_cache_mode', 'force_generic_plan', true);
  end if;
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
    -- The batch's tables whose static insert (push_insert_rows) was built for their columns as they
    -- are (the digest of push_write_statements), read once per push for push_write. The columns
    -- cannot change from here on: push_scope read every table with a pending event, and that lock is
    -- held to the end of the transaction.
    -- (Each digest computed for a table of the batch only: lateral, per table.)
    perform set_config('shopsync.static_inserts', coalesce((
      select jsonb_agg(b.tbl)
      from (select distinct e.tbl from pg_temp.push_events as e where e.status = 'pending') as b
      cross join lateral (
        select md5(min(a.attrelid::text) || ':' || string_agg(
          a.attnum::text || '.' || a.xmin::text || '.' || coalesce(d.oid::text, ''), ',' order by a.attnum
        )) as columns_md5
        from pg_catalog.pg_attribute as a
        left join pg_catalog.pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attrelid = to_regclass('public.' || quote_ident(b.tbl)) and a.attnum > 0
      ) as c
      inner join shopsync.push_static_inserts as s on s.table_name = b.tbl and s.columns_md5 = c.columns_md5
    ), '[]'::jsonb)::text, true);

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

-- 4a. Classify (as in 20261203001000_push_cheaper.sql). The group's rows are locked (in key order)
-- and read by the batch's keys in the one statement that names the table, into arrays; each event
-- is classified against them by a static statement (planned once per backend: the dynamic one was
-- parsed and planned on every call, ~0.35 ms a table).
create or replace function shopsync.push_classify(p_shop uuid, p_table text, p_round int)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_stale bigint;
  v_ids uuid[];
  v_cur_ids uuid[];
  v_cur_versions bigint[];
  v_cur_shops uuid[];
  v_cur_deleted boolean[];
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
  select r.ids, r.versions, r.shops, r.deleted into v_cur_ids, v_cur_versions, v_cur_shops, v_cur_deleted
  from shopsync.push_current_rows(p_table, v_ids) as r;

  -- Classified against the current version; the answer is how many are stale.
  with cur as (
    select c.id, c.version, c.shop_id, c.deleted
    from unnest(v_cur_ids, v_cur_versions, v_cur_shops, v_cur_deleted) as c (id, version, shop_id, deleted)
  ),

  classified as (
    update pg_temp.push_events as e
    set cur_version = c.version, cur_shop = c.shop_id,
        cur_deleted = c.deleted,
        status = case
          when e.op = 'insert' and c.version is not null then 'conflict'
          when e.op = 'insert' then 'go'
          when c.version is null or c.shop_id <> p_shop then 'rejected'
          when c.deleted then 'conflict'
          when e.base_version > c.version then 'rejected'
          when e.base_version = c.version then 'go'
          else 'stale'
        end,
        reason = case
          when e.op = 'insert' and c.version is not null then 'id_exists'
          when e.op = 'insert' then null
          when c.version is null or c.shop_id <> p_shop then 'not_found'
          when c.deleted then 'row_deleted'
          when e.base_version > c.version then 'invalid_base_version'
        end,
        message = case
          when e.op <> 'insert' and (c.version is null or c.shop_id <> p_shop)
            then format('%s has no row %s', e.tbl, e.row_id)
          when e.op <> 'insert' and not c.deleted and e.base_version > c.version
            then format('base_version %s is ahead of the server''s %s', e.base_version, c.version)
        end
    from pg_temp.push_events as e2
    left join cur as c on c.id = e2.row_id
    where e2.ord = e.ord and e2.tbl = p_table and e2.rnd = p_round and e2.status = 'pending'
      and e.tbl = p_table and e.rnd = p_round and e.status = 'pending'
    returning e.status
  )

  select count(*) into v_stale from classified where classified.status = 'stale';
  return v_stale;
end;
$$;

-- 4. Apply one table's events of one round (as in 20261122000500_push.sql): the table's validator
-- through its static call (push_run_validator) instead of a dynamic statement.
create or replace function shopsync.push_apply_table(
  p_shop uuid, p_role text, p_device_id uuid, p_table text, p_policy text, p_validator text, p_round int
)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_stale bigint;
begin
  v_stale := shopsync.push_classify(p_shop, p_table, p_round);
  if p_validator is not null then
    perform shopsync.push_run_validator(p_validator, p_shop, p_role, p_round);
  end if;
  -- (A validator only rejects: no stale event after classifying means none now.)
  if v_stale > 0 then
    perform shopsync.push_resolve_stale(p_shop, p_device_id, p_table, p_policy, p_round);
  end if;
  perform shopsync.push_write(p_shop, p_table, p_round);
  perform shopsync.push_attach_server_rows(p_shop, p_table, p_round);
end;
$$;

-- The orders' validator (as in 20261202003000_push_at_scale.sql), its statements static (they named
-- no synced table by a parameter: EXECUTE only parsed and planned them on every call).
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
  select array_agg(e.row_id) into v_ids
  from pg_temp.push_events as e
  where e.tbl = 'orders' and e.rnd = p_round and e.status in ('go', 'stale') and e.op = 'update' and e.data ? 'status';
  if v_ids is null then
    return;
  end if;
  update pg_temp.push_events as e
  set status = 'rejected', reason = 'invalid_transition',
      message = format('order status cannot move from %s to %s', o.status, e.data ->> 'status')
  from public.orders as o
  where e.tbl = 'orders' and e.rnd = p_round and e.status in ('go', 'stale') and e.op = 'update'
    and o.id = any(v_ids) and o.id = e.row_id and o.shop_id is not distinct from p_shop
    and e.data ? 'status'
    and not shopsync.order_transition_ok(o.status, e.data ->> 'status')
    and not (e.override and p_role = 'owner');
end;
$$;

-- 4c. Write (as in 20261202003000_push_at_scale.sql): a group's insert through its static branch
-- (push_insert_rows) when the table's columns are those it was generated for (the driver lists such
-- tables of the batch once per push in the setting shopsync.static_inserts).
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
  v_static boolean;
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  -- Only the statements the group needs (an empty update still costs a join with the table).
  select count(*) filter (where e.op = 'insert' and e.status = 'go'),
         count(*) filter (where e.op <> 'insert' and e.status in ('go', 'go_merge', 'go_partial'))
  into v_n_ins, v_n_upd
  from pg_temp.push_events as e where e.tbl = p_table and e.rnd = p_round;
  -- Whether the table's static insert is current (listed by the driver, shopsync.push).
  v_static := coalesce(nullif(current_setting('shopsync.static_inserts', true), '')::jsonb ? p_table, false);
  -- The statements (built, or read from push_write_sql) are fetched only when needed: an update, an
  -- insert without a static branch for this column set, or the fallback below.
  begin
    if v_n_ins > 0 and v_static then
      v_static := shopsync.push_insert_rows(p_table, p_round, p_shop, null);
    end if;
    if v_n_ins > 0 and not v_static then
      select ws.insert_sql, ws.update_sql into v_insert_sql, v_update_sql
      from shopsync.push_write_statements(p_table) as ws;
      execute v_insert_sql using p_table, p_round, p_shop, null::int;
    end if;
    if v_n_upd > 0 then
      if v_update_sql is null then
        select ws.insert_sql, ws.update_sql into v_insert_sql, v_update_sql
        from shopsync.push_write_statements(p_table) as ws;
      end if;
      execute v_update_sql using p_table, p_round, p_shop, null::int;
    end if;
  exception when others then
    if v_insert_sql is null then
      select ws.insert_sql, ws.update_sql into v_insert_sql, v_update_sql
      from shopsync.push_write_statements(p_table) as ws;
    end if;
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

-- 3b. Scope (as in 20261201003000_insiders_fair_use.sql): the batch's row ids another shop holds
-- get the answer of a free id (update, delete); an insert cannot take the id. Per table, one small
-- dynamic read by the batch's keys (the only statement that names the table); the update, static,
-- runs only when it found such an id.
create or replace function shopsync.push_scope(p_shop uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_tbl text;
  v_ids uuid[];
  v_taken uuid[];
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  for v_tbl, v_ids in
    select e.tbl, array_agg(e.row_id)
    from pg_temp.push_events as e
    inner join shopsync.synced_tables as st on st.table_name = e.tbl
    where e.status = 'pending'
    group by e.tbl
  loop
    v_taken := shopsync.push_taken_ids(v_tbl, v_ids, p_shop);
    if v_taken is not null then
      update pg_temp.push_events as e
      set status = 'rejected',
          reason = case when e.op = 'insert' then 'id_unavailable' else 'not_found' end,
          message = case when e.op = 'insert'
            then format('%s: id %s is unavailable; insert the row under a new id', e.tbl, e.row_id)
            else format('%s has no row %s', e.tbl, e.row_id) end
      where e.tbl = v_tbl and e.status = 'pending' and e.row_id = any(v_taken);
    end if;
  end loop;
end;
$$;

-- The invoice hash (as in 20261122001100_invoices.sql and 20261201003100_invoice_hash_v2.sql): the
-- same expressions in PL/pgSQL, so each backend plans them once; as SQL functions with a SET clause
-- (not inlined) their bodies were parsed and planned again for every invoice (~0.4 ms of a sale).
create or replace function shopsync.invoice_hash(p_canonical text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return encode(extensions.digest(convert_to(p_canonical, 'UTF8'), 'sha256'), 'hex');
end;
$$;

create or replace function shopsync.invoice_canonical_v2(p_inv jsonb)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  return jsonb_build_array(
    'shopsync-invoice-v2',
    p_inv ->> 'id',
    p_inv ->> 'shop_id',
    coalesce(p_inv ->> 'device_id', ''),
    p_inv ->> 'series',
    p_inv ->> 'number',
    to_char((p_inv ->> 'issued_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    coalesce(p_inv ->> 'kind', 'invoice'),
    coalesce(p_inv ->> 'refers_to', ''),
    coalesce(p_inv ->> 'customer_id', ''),
    coalesce(p_inv ->> 'currency', 'EUR'),
    round((p_inv ->> 'subtotal')::numeric, 2)::text,
    round((p_inv ->> 'tax')::numeric, 2)::text,
    round((p_inv ->> 'total')::numeric, 2)::text,
    coalesce((
      select jsonb_agg(jsonb_build_array(
        coalesce(l.value ->> 'product_id', ''),
        l.value ->> 'description',
        round((l.value ->> 'quantity')::numeric, 3)::text,
        round((l.value ->> 'unit_price')::numeric, 2)::text,
        round((l.value ->> 'tax_rate')::numeric, 2)::text
      ) order by l.ordinality)
      from jsonb_array_elements(p_inv -> 'lines') with ordinality as l (value, ordinality)
    ), '[]'::jsonb),
    p_inv ->> 'prev_hash'
  )::text;
end;
$$;

create or replace function shopsync.invoice_row_hash(p_inv public.invoices)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return shopsync.invoice_hash(case when p_inv.hash_version = 1
    then shopsync.invoice_canonical(
      p_inv.shop_id, p_inv.series, p_inv.number, p_inv.issued_at, p_inv.kind, p_inv.refers_to, p_inv.customer_id,
      p_inv.currency, p_inv.subtotal, p_inv.tax, p_inv.total, p_inv.lines, p_inv.prev_hash)
    else shopsync.invoice_canonical_v2(to_jsonb(p_inv)) end);
end;
$$;

revoke execute on function shopsync.canonical_json(jsonb) from public, anon, authenticated, service_role;
revoke execute on function shopsync.push_classify(uuid, text, int) from public, anon, authenticated, service_role;
revoke execute on function shopsync.push_scope(uuid) from public, anon, authenticated, service_role;
revoke execute on function shopsync.invoice_hash(text) from public, anon, authenticated, service_role;
revoke execute on function shopsync.invoice_canonical_v2(jsonb) from public, anon, authenticated, service_role;
revoke execute on function shopsync.invoice_row_hash(public.invoices) from public, anon, authenticated, service_role;
revoke all on shopsync.push_static_inserts from public, anon, authenticated, service_role;
revoke execute on function shopsync.build_push_readers() from public, anon, authenticated, service_role;
revoke execute on function shopsync.on_synced_tables_changed() from public, anon, authenticated, service_role;
revoke execute on function shopsync.push_write(uuid, text, int) from public, anon, authenticated, service_role;
revoke execute on function shopsync.push_apply_table(uuid, text, uuid, text, text, text, int)
from public, anon, authenticated, service_role;
revoke execute on function shopsync.validate_orders(uuid, text, int) from public, anon, authenticated, service_role;
grant execute on function shopsync.push(uuid, jsonb) to authenticated;
