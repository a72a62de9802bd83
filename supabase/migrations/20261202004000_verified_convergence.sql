-- Verified convergence (issue 14 item 3): per (shop, table) checksums that the change-log triggers
-- keep up to date, RPCs for a device to compare its synced rows with them and to re-fetch a table
-- that differs, and repairs counted in sync_metrics.
--
-- The checksum of a (shop, table) is the count of its live rows (deleted_at is null) and the sum
-- modulo 2^64 of their row hashes, kept by statement-level triggers beside the change-log ones
-- (zzz_checksum_insert/update/delete; see shopsync.refresh_checksums). Their names sort after the
-- change-log triggers' (zz_log_*), and triggers fire in name order: every writer takes the shop's
-- cursor row first and the checksum rows after it, so two transactions writing the same shop's
-- tables in different orders queue on the cursor instead of deadlocking on the checksum rows.
-- Tombstones do not count: the app never shows them, and the retention job purges them without
-- telling devices, so purges change nothing (a hard delete of a live row, which nothing does,
-- would be subtracted all the same).
-- shopsync.log_inserts/log_updates are unchanged.
--
-- Row hash: the first 8 bytes (big-endian, signed) of the MD5 of the row's canonical text: every
-- column sync_schema() lists (what a device stores, version and the other system columns
-- included), ordered by name, joined by '|', each in its canonical form (null: empty):
--   integers, uuid: their text;  boolean: true / false;  numeric: its value without trailing
--   zeros (trim_scale: 12.50 -> 12.5, 100.00 -> 100);  real/double: the shortest round-trip digits,
--   likewise;  date: YYYY-MM-DD;  timestamps: UTC 'YYYY-MM-DDTHH:MM:SS.ffffffZ', the form devices
--   store (timestamp without time zone taken as UTC);  json/jsonb: its canonical
--   JSON (keys sorted by code point, no spaces, numbers as above, strings escaped as jsonb prints
--   them) as text, JSON null as null (devices cannot tell them apart);  text and anything else:
--   its text.  Text and json values are prefixed by their length in characters and ':', so the
--   joined form is unambiguous.
-- client/shopsync/checksums.py computes the same from SQLite values; the shared vectors
-- (supabase/tests/fixtures/row_hash_vectors.json) are checked by pgTAP and pytest.
--
-- Cost: one extra statement per write statement, set-wise over its transition tables; see
-- docs/performance.md for the push and pull figures.
--
-- Backfill: one pass over each synced table, grouped by shop, under a lock on the checksum table
-- (pushes wait for it): fine on a live database of moderate size (about 1 s per million rows).

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Tables -----------------------------------------------------------------------------------------
create table shopsync.table_checksums (
  shop_id uuid not null references public.shops (id),
  table_name text not null,
  row_count bigint not null default 0,
  checksum bigint not null default 0,
  primary key (shop_id, table_name)
);
comment on table shopsync.table_checksums is
'Per shop and synced table: live rows and the sum mod 2^64 of their row hashes (kept by the log triggers).';

create table shopsync.checksum_forms (
  table_name text primary key references shopsync.synced_tables (table_name) on delete cascade,
  columns text[] not null,
  hash_sql text not null
);
comment on table shopsync.checksum_forms is
'Per synced table: the columns its row hash covers (by name) and the SQL expression over alias r '
'(also compiled into its upkeep trigger function shopsync."checksums_<table>").';

create table shopsync.repair_stats (
  shop_id uuid not null references public.shops (id),
  day date not null,
  device_id uuid not null,
  table_name text not null,
  repairs bigint not null default 0,
  rows_fixed bigint not null default 0,
  last_repair_at timestamptz not null default now(),
  primary key (shop_id, day, device_id, table_name)
);
comment on table shopsync.repair_stats is
'Repairs devices reported (a table whose checksum differed and was re-fetched), per day.';

-- Hashing ----------------------------------------------------------------------------------------
-- A sum as a signed 64-bit value (modulo 2^64).
create or replace function shopsync.wrap64(p_value numeric)
returns bigint
language sql
immutable
parallel safe
set search_path = ''
as $$
  select (case when r.v >= 9223372036854775808 then r.v - 18446744073709551616 else r.v end)::bigint
  from (select ((coalesce(p_value, 0) % 18446744073709551616) + 18446744073709551616) % 18446744073709551616 as v) as r
$$;

create or replace function shopsync.with_length(p_text text)
returns text
language sql
immutable
strict
parallel safe
set search_path = ''
as $$
  select length(p_text) || ':' || p_text
$$;

-- Canonical JSON: object keys sorted by code point, no whitespace, numbers without trailing zeros.
create or replace function shopsync.canonical_json(p_value jsonb)
returns text
language sql
immutable
strict
parallel safe
set search_path = ''
as $$
  select case jsonb_typeof(p_value)
    when 'object' then '{' || coalesce((
      select string_agg(to_jsonb(e.key)::text || ':' || shopsync.canonical_json(e.value), ',' order by e.key collate "C")
      from jsonb_each(p_value) as e (key, value)
    ), '') || '}'
    when 'array' then '[' || coalesce((
      select string_agg(shopsync.canonical_json(e.value), ',' order by e.n)
      from jsonb_array_elements(p_value) with ordinality as e (value, n)
    ), '') || ']'
    when 'number' then trim_scale(p_value::numeric)::text
    else p_value::text
  end
$$;

-- The canonical text of one column as an SQL expression over `r` (timezone UTC, datestyle ISO);
-- inlined in the table's hash expression (a function call per row and column would cost more).
create or replace function shopsync.canonical_column_sql(p_column text, p_type regtype)
returns text
language sql
immutable
set search_path = ''
as $$
  select case
    when p_type in ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'uuid'::regtype, 'boolean'::regtype,
                    'date'::regtype)
      then format('r.%I::text', p_column)
    when p_type = 'timestamp with time zone'::regtype
      then format('to_char(r.%I at time zone ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'')', p_column)
    when p_type = 'timestamp without time zone'::regtype
      then format('to_char(r.%I, ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'')', p_column)
    when p_type = 'numeric'::regtype then format('trim_scale(r.%I)::text', p_column)
    when p_type in ('real'::regtype, 'double precision'::regtype)
      then format('trim_scale(r.%I::text::numeric)::text', p_column)
    when p_type in ('json'::regtype, 'jsonb'::regtype)
      then format('shopsync.with_length(nullif(shopsync.canonical_json(r.%I::jsonb), ''null''))', p_column)
    else format('length(r.%1$I::text) || '':'' || r.%1$I::text', p_column)
  end
$$;

-- (Re)build a table's checksum form, its upkeep triggers, and its checksums in every shop. Called
-- when a table is registered (again, after it changed) and by the backfill below.
--
-- The upkeep is a trigger function generated per table (shopsync."checksums_<table>"): static SQL
-- over the statement's transition tables, so its plans are cached per session (dynamic SQL would
-- be planned again by every statement). Three statement-level triggers call it: after insert (+ new
-- live rows), after update (+ new live rows, - old live rows: a soft delete only subtracts, a
-- restore only adds) and after delete (- old live rows: the retention job purges tombstones only,
-- which do not count). They run beside the change-log triggers (zz_log_*), in the same statement
-- and transaction; the checksum row of a (shop, table) is locked until commit like the shop's
-- cursor row the change-log triggers bump, so no new contention.
--
-- The recount waits for pushes that already counted into table_checksums to commit, and holds
-- later ones until it commits, so no write is counted twice or missed.
create or replace function shopsync.refresh_checksums(p_table text)
returns void
language plpgsql
security definer
set search_path = ''
set timezone to 'UTC'
set datestyle to 'ISO, YMD'
set extra_float_digits to 1
as $$
declare
  v_columns text[];
  v_hash text;
  v_fn text := left('checksums_' || p_table, 63);
begin
  select
    array_agg(a.attname::text order by a.attname::text collate "C"),
    '(''x'' || left(md5(concat('
    || string_agg(shopsync.canonical_column_sql(a.attname::text, a.atttypid::regtype), ', ''|'', '
      order by a.attname::text collate "C")
    || ')), 16))::bit(64)::bigint'
  into v_columns, v_hash
  from pg_catalog.pg_attribute as a
  where a.attrelid = ('public.' || quote_ident(p_table))::regclass and a.attnum > 0 and not a.attisdropped;

  execute format($f$
    create or replace function shopsync.%1$I()
    returns trigger
    language plpgsql
    security definer
    set search_path = ''
    set timezone to 'UTC'
    set datestyle to 'ISO, YMD'
    set extra_float_digits to 1
    as $body$
    begin
      if tg_op = 'INSERT' then
        insert into shopsync.table_checksums as t (shop_id, table_name, row_count, checksum)
        select r.shop_id, %2$L, count(*), shopsync.wrap64(sum(%3$s))
        from new_rows as r
        where r.deleted_at is null
        group by r.shop_id
        on conflict (shop_id, table_name) do update
        set row_count = t.row_count + excluded.row_count,
          checksum = shopsync.wrap64(t.checksum::numeric + excluded.checksum);
      elsif tg_op = 'UPDATE' then
        insert into shopsync.table_checksums as t (shop_id, table_name, row_count, checksum)
        select d.shop_id, %2$L, sum(d.n), shopsync.wrap64(sum(d.h))
        from (
          select r.shop_id, 1 as n, %3$s as h from new_rows as r where r.deleted_at is null
          union all
          select r.shop_id, -1 as n, -(%3$s)::numeric as h from old_rows as r where r.deleted_at is null
        ) as d
        group by d.shop_id
        on conflict (shop_id, table_name) do update
        set row_count = t.row_count + excluded.row_count,
          checksum = shopsync.wrap64(t.checksum::numeric + excluded.checksum);
      else
        update shopsync.table_checksums as t
        set row_count = t.row_count - d.n, checksum = shopsync.wrap64(t.checksum::numeric - d.h)
        from (
          select r.shop_id, count(*) as n, sum(%3$s) as h
          from old_rows as r where r.deleted_at is null group by r.shop_id
        ) as d
        where t.shop_id = d.shop_id and t.table_name = %2$L;
      end if;
      return null;
    end;
    $body$
  $f$, v_fn, p_table, v_hash);
  execute format('revoke execute on function shopsync.%I() from public, anon, authenticated, service_role', v_fn);
  execute format('drop trigger if exists zzz_checksum_insert on public.%I', p_table);
  execute format('drop trigger if exists zzz_checksum_update on public.%I', p_table);
  execute format('drop trigger if exists zzz_checksum_delete on public.%I', p_table);
  execute format(
    'create trigger zzz_checksum_insert after insert on public.%I referencing new table as new_rows '
    'for each statement execute function shopsync.%I()', p_table, v_fn);
  execute format(
    'create trigger zzz_checksum_update after update on public.%I referencing old table as old_rows '
    'new table as new_rows for each statement execute function shopsync.%I()', p_table, v_fn);
  execute format(
    'create trigger zzz_checksum_delete after delete on public.%I referencing old table as old_rows '
    'for each statement execute function shopsync.%I()', p_table, v_fn);

  lock table shopsync.table_checksums in share row exclusive mode;
  insert into shopsync.checksum_forms (table_name, columns, hash_sql) values (p_table, v_columns, v_hash)
  on conflict (table_name) do update set columns = excluded.columns, hash_sql = excluded.hash_sql;
  delete from shopsync.table_checksums as t where t.table_name = p_table;
  execute format($q$
    insert into shopsync.table_checksums (shop_id, table_name, row_count, checksum)
    select r.shop_id, %1$L, count(*), shopsync.wrap64(sum(%2$s))
    from public.%1$I as r
    where r.deleted_at is null
    group by r.shop_id
  $q$, p_table, v_hash);
end;
$$;

create or replace function shopsync.on_table_registered()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform shopsync.refresh_checksums(new.table_name);
  return null;
end;
$$;

create trigger checksum_form_on_register after insert or update on shopsync.synced_tables
for each row execute function shopsync.on_table_registered();

-- Backfill: every synced table's form and checksums (and its delete trigger).
select shopsync.refresh_checksums(st.table_name)
from shopsync.synced_tables as st
order by st.table_name;

-- RPCs -------------------------------------------------------------------------------------------
-- The shop's cursor and per-table checksums, read by one statement (one snapshot). p_exclude
-- ({"table": [row ids]}, at most 5000 ids) names rows the device cannot vouch for (queued edits
-- without a known server copy): their server rows are taken out of the answer's count and checksum.
create or replace function shopsync.checksums(p_device_id uuid, p_exclude jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
set timezone to 'UTC'
set datestyle to 'ISO, YMD'
set extra_float_digits to 1
as $$
declare
  v_shop uuid;
  v_exclude jsonb := coalesce(p_exclude, '{}'::jsonb);
  v_ids bigint;
  v_excluded text;
  v_out jsonb;
begin
  select rd.shop_id into v_shop from shopsync.require_device(p_device_id, false) as rd;
  if jsonb_typeof(v_exclude) <> 'object'
     or exists (select 1 from jsonb_each(v_exclude) as e where jsonb_typeof(e.value) <> 'array') then
    raise exception 'p_exclude must be an object of arrays of row ids'
      using errcode = 'PT400', detail = 'invalid_payload';
  end if;
  begin
    select count(x.id::uuid) into v_ids
    from jsonb_each(v_exclude) as e, jsonb_array_elements_text(e.value) as x (id);
  exception when invalid_text_representation then
    raise exception 'p_exclude holds something that is not a row id'
      using errcode = 'PT400', detail = 'invalid_payload';
  end;
  if v_ids > 5000 then
    raise exception 'p_exclude names % rows; at most 5000', v_ids
      using errcode = 'PT400', detail = 'payload_too_large';
  end if;

  -- (one primary-key lookup per named row)
  select string_agg(format(
    'select %1$L::text as table_name, count(*) as n, coalesce(sum(l.h), 0) as h'
    ' from (select distinct x.id::uuid as id from jsonb_array_elements_text($2 -> %1$L) as x (id)) as e'
    ' cross join lateral (select %2$s as h from public.%1$I as r'
    '  where r.id = e.id and r.shop_id = $1 and r.deleted_at is null offset 0) as l',
    f.table_name, f.hash_sql), ' union all ')
  into v_excluded
  from shopsync.checksum_forms as f
  where v_exclude ? f.table_name;

  execute format($q$
    select jsonb_build_object(
      'cursor', (select c.last_seq from shopsync.shop_cursor as c where c.shop_id = $1),
      'server_time', now(),
      'tables', coalesce(jsonb_agg(jsonb_build_object(
        'table', f.table_name,
        'columns', to_jsonb(f.columns),
        'count', coalesce(t.row_count, 0) - coalesce(x.n, 0),
        'checksum', lpad(to_hex(shopsync.wrap64(coalesce(t.checksum, 0)::numeric - coalesce(x.h, 0))), 16, '0'),
        'excluded', coalesce(x.n, 0)
      ) order by f.table_name), '[]'::jsonb)
    )
    from shopsync.checksum_forms as f
    left join shopsync.table_checksums as t on t.shop_id = $1 and t.table_name = f.table_name
    left join (%s) as x on x.table_name = f.table_name
  $q$, coalesce(v_excluded, 'select null::text as table_name, 0::bigint as n, 0::numeric as h where false'))
  into v_out
  using v_shop, v_exclude;
  return v_out;
end;
$$;

-- One page of a table's live rows in the shop, by id, with the shop's cursor (same statement).
create or replace function shopsync.table_rows(p_device_id uuid, p_table text, p_after uuid, p_limit int)
returns jsonb
language plpgsql
security definer
set search_path = ''
set timezone to 'UTC'
set datestyle to 'ISO, YMD'
set extra_float_digits to 1
as $$
declare
  v_shop uuid;
  v_limit int := least(greatest(coalesce(p_limit, 1000), 1), 5000);
  v_out jsonb;
begin
  select rd.shop_id into v_shop from shopsync.require_device(p_device_id, false) as rd;
  if not exists (select 1 from shopsync.checksum_forms as f where f.table_name = p_table) then
    raise exception 'no synced table named %', p_table using errcode = 'PT400', detail = 'unknown_table';
  end if;
  execute format($q$
    select jsonb_build_object(
      'cursor', (select c.last_seq from shopsync.shop_cursor as c where c.shop_id = $1),
      'rows', coalesce(jsonb_agg(to_jsonb(p) order by p.id), '[]'::jsonb),
      'has_more', count(*) = $3,
      'next_after', (array_agg(p.id order by p.id desc))[1]
    )
    from (
      select r.* from public.%I as r
      where r.shop_id = $1 and r.deleted_at is null and ($2::uuid is null or r.id > $2)
      order by r.id
      limit $3
    ) as p
  $q$, p_table) into v_out using v_shop, p_after, v_limit;
  return v_out;
end;
$$;

-- A device repaired a table (its checksum differed; it re-fetched the rows): counted per day.
create or replace function shopsync.report_repair(p_device_id uuid, p_table text, p_rows bigint)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_shop uuid;
begin
  select rd.shop_id into v_shop from shopsync.require_device(p_device_id, false) as rd;
  if not exists (select 1 from shopsync.checksum_forms as f where f.table_name = p_table) then
    raise exception 'no synced table named %', p_table using errcode = 'PT400', detail = 'unknown_table';
  end if;
  insert into shopsync.repair_stats as s (shop_id, day, device_id, table_name, repairs, rows_fixed)
  values (v_shop, current_date, p_device_id, p_table, 1, least(greatest(coalesce(p_rows, 0), 0), 1000000000))
  on conflict (shop_id, day, device_id, table_name) do update
  set repairs = s.repairs + 1, rows_fixed = s.rows_fixed + excluded.rows_fixed, last_repair_at = now();
  return jsonb_build_object('recorded', true);
end;
$$;

create or replace function public.sync_checksums(p_device_id uuid, p_exclude jsonb default '{}'::jsonb)
returns jsonb
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
    return shopsync.checksums(p_device_id, p_exclude);
  exception
    when query_canceled or lock_not_available or deadlock_detected or serialization_failure
      or program_limit_exceeded or insufficient_resources then
      get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
      return shopsync.call_failed(v_state, v_msg);
  end;
end;
$$;
comment on function public.sync_checksums(uuid, jsonb) is
'The shop''s cursor and per-table live-row counts and checksums, read together (verified sync).';

create or replace function public.sync_table_rows(
  p_device_id uuid, p_table text, p_after uuid default null, p_limit int default 1000
)
returns jsonb
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
    return shopsync.table_rows(p_device_id, p_table, p_after, p_limit);
  exception
    when query_canceled or lock_not_available or deadlock_detected or serialization_failure
      or program_limit_exceeded or insufficient_resources then
      get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
      return shopsync.call_failed(v_state, v_msg);
  end;
end;
$$;
comment on function public.sync_table_rows(uuid, text, uuid, integer) is
'One page (by id) of a synced table''s live rows, to repair a device''s copy whose checksum differed.';

create or replace function public.sync_report_repair(p_device_id uuid, p_table text, p_rows bigint default 0)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
begin
  perform shopsync.meter_call('pull');
  return shopsync.report_repair(p_device_id, p_table, p_rows);
end;
$$;
comment on function public.sync_report_repair(uuid, text, bigint) is
'A device tells the server it repaired a table; owners see repairs in sync_metrics.';

-- sync_metrics: as in 20261122000800_sync_metrics.sql, plus repairs per device and per day/table.
create or replace function shopsync.metrics()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_shop uuid;
  v_role text;
  v_last bigint;
begin
  select m.shop_id, m.role into v_shop, v_role from shopsync.require_member() as m;
  if v_role <> 'owner' then
    raise exception 'only owners may read sync metrics' using errcode = 'PT403', detail = 'role_forbidden';
  end if;
  select c.last_seq into v_last from shopsync.shop_cursor as c where c.shop_id = v_shop;
  return jsonb_build_object(
    'shop_id', v_shop,
    'last_seq', v_last,
    'devices', coalesce((
      select jsonb_agg(jsonb_build_object(
        'device_id', d.id, 'name', d.name, 'platform', d.platform, 'revoked', d.revoked_at is not null,
        'last_push_at', d.last_push_at, 'last_pull_at', d.last_pull_at, 'last_cursor', d.last_cursor,
        'lag', v_last - d.last_cursor,
        'repairs', coalesce(rs.repairs, 0), 'last_repair_at', rs.last_repair_at
      ) order by d.registered_at)
      from public.devices as d
      left join (
        select s.device_id, sum(s.repairs) as repairs, max(s.last_repair_at) as last_repair_at
        from shopsync.repair_stats as s where s.shop_id = v_shop
        group by s.device_id
      ) as rs on d.id = rs.device_id
      where d.shop_id = v_shop
    ), '[]'::jsonb),
    'days', coalesce((
      select jsonb_agg(jsonb_build_object(
        'day', x.day, 'pushes', x.pushes, 'applied', x.applied, 'merged', x.merged,
        'conflicts', x.conflicts, 'rejected', x.rejected, 'duplicates', x.duplicates
      ) order by x.day desc)
      from (
        select s.day, sum(s.pushes) as pushes, sum(s.applied) as applied, sum(s.merged) as merged,
          sum(s.conflicts) as conflicts, sum(s.rejected) as rejected, sum(s.duplicates) as duplicates
        from shopsync.push_stats as s where s.shop_id = v_shop
        group by s.day
        order by s.day desc
        limit 90
      ) as x
    ), '[]'::jsonb),
    'repairs', coalesce((
      select jsonb_agg(jsonb_build_object(
        'day', y.day, 'table', y.table_name, 'repairs', y.repairs, 'rows_fixed', y.rows_fixed
      ) order by y.day desc, y.table_name)
      from (
        select s.day, s.table_name, sum(s.repairs) as repairs, sum(s.rows_fixed) as rows_fixed
        from shopsync.repair_stats as s where s.shop_id = v_shop and s.day > current_date - 90
        group by s.day, s.table_name
      ) as y
    ), '[]'::jsonb)
  );
end;
$$;

-- Privileges of this capability's objects ------------------------------------------------------
revoke all on shopsync.table_checksums from public, anon, authenticated, service_role;
revoke all on shopsync.checksum_forms from public, anon, authenticated, service_role;
revoke all on shopsync.repair_stats from public, anon, authenticated, service_role;
revoke execute on function shopsync.wrap64(numeric) from public, anon, authenticated, service_role;
revoke execute on function shopsync.with_length(text) from public, anon, authenticated, service_role;
revoke execute on function shopsync.canonical_json(jsonb) from public, anon, authenticated, service_role;
revoke execute on function shopsync.canonical_column_sql(text, regtype) from public, anon, authenticated, service_role;
revoke execute on function shopsync.refresh_checksums(text) from public, anon, authenticated, service_role;
revoke execute on function shopsync.on_table_registered() from public, anon, authenticated, service_role;
revoke execute on function shopsync.checksums(uuid, jsonb) from public, anon, authenticated, service_role;
revoke execute on function shopsync.table_rows(uuid, text, uuid, integer)
from public, anon, authenticated, service_role;
revoke execute on function shopsync.report_repair(uuid, text, bigint) from public, anon, authenticated, service_role;
revoke execute on function public.sync_checksums(uuid, jsonb) from public, anon, authenticated, service_role;
revoke execute on function public.sync_table_rows(uuid, text, uuid, integer)
from public, anon, authenticated, service_role;
revoke execute on function public.sync_report_repair(uuid, text, bigint) from public, anon, authenticated, service_role;
grant execute on function shopsync.checksums(uuid, jsonb) to authenticated;
grant execute on function shopsync.table_rows(uuid, text, uuid, integer) to authenticated;
grant execute on function shopsync.report_repair(uuid, text, bigint) to authenticated;
grant execute on function public.sync_checksums(uuid, jsonb) to authenticated, service_role;
grant execute on function public.sync_table_rows(uuid, text, uuid, integer) to authenticated, service_role;
grant execute on function public.sync_report_repair(uuid, text, bigint) to authenticated, service_role;
