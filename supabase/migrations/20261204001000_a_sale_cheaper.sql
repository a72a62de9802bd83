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
--   push_run_validator: a table's validator (push_apply_table).
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
  revoke execute on function shopsync.push_current_rows(text, uuid[]) from public, anon, authenticated, service_role;
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
revoke execute on function shopsync.build_push_readers() from public, anon, authenticated, service_role;
revoke execute on function shopsync.on_synced_tables_changed() from public, anon, authenticated, service_role;
revoke execute on function shopsync.push_apply_table(uuid, text, uuid, text, text, text, int)
from public, anon, authenticated, service_role;
revoke execute on function shopsync.validate_orders(uuid, text, int) from public, anon, authenticated, service_role;
