-- Readable values and bounded bytes (hardening, issue 12 items 2 and 3).
--
-- Before: the server accepted values some clients cannot read back (a client_ts or a business
-- timestamp whose offset carried it into 1 BC or year 10000; a client_ts of year 0000 even failed
-- the whole push), and pull pages were bounded by row count only, so a shop with large rows
-- (invoices of 500 long lines) failed every page with 54000 (jsonb array too large). Now:
--   * timestamps outside 0001-01-01 .. 9999-12-31 UTC (after offsets) are refused per event
--     (invalid_client_ts, invalid_value); floating-point numbers outside their type's range too;
--   * a row whose data is larger than sync_max_row_bytes is refused per event (row_too_large);
--   * a pull page stops before pull_max_page_bytes (at least one entry a page).
-- Text with NUL (\u0000) or a lone surrogate never reaches the database: jsonb cannot hold it, so
-- the body is refused whole (22P05); clients refuse such values at write time and never send them.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

insert into shopsync.config (key, value, description) values
(
  'sync_max_row_bytes', '6291456',
  'Largest row a push may write, in bytes (its data as jsonb, uncompressed); larger: row_too_large.'
),
(
  'pull_max_page_bytes', '8388608',
  'A sync_pull page stops before its rows pass this many bytes (uncompressed jsonb); at least one row.'
)
on conflict (key) do nothing;


create or replace function shopsync.try_timestamptz(p text)
returns timestamptz
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_year int;
  v_month int;
  v_rest text := substr(p, 17);  -- after YYYY-MM-DDTHH:MM: seconds and offset, if any
  v_ts timestamptz;
begin
  -- Match without capture groups (the regex engine's fast path), then read fixed positions.
  if p is null
     or p !~ '^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$' then
    return null;
  end if;
  v_year := substr(p, 1, 4)::int;
  v_month := substr(p, 6, 2)::int;
  if v_year < 1 or v_month not between 1 and 12 or substr(p, 9, 2)::int < 1
     or substr(p, 9, 2)::int > extract(day from (make_date(v_year, v_month, 1) + interval '1 month' - interval '1 day')) then
    return null;
  end if;
  if length(p) > 10 and (
    substr(p, 12, 2)::int > 23 or substr(p, 15, 2)::int > 59
    or (substr(p, 17, 1) = ':' and substr(p, 18, 2)::int > 59)
  ) then
    return null;
  end if;
  -- Offsets beyond what Postgres accepts (+-15:59).
  if v_rest ~ '[+-](?:1[6-9]|[2-9]\d)(?::?\d{2})?$' or v_rest ~ '[+-]\d{2}:?[6-9]\d$' then
    return null;
  end if;
  if length(p) = 10 or v_rest !~ '(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$' then
    v_ts := (p || case when length(p) = 10 then 'T00:00:00Z' else 'Z' end)::timestamptz;
  else
    v_ts := p::timestamptz;
  end if;
  -- Readable by every client: years 1 to 9999 in UTC. An offset can carry 0001-01-01 into 1 BC
  -- (which Postgres writes with a " BC" suffix), 9999-12-31 into year 10000, and so can rounding
  -- of more than six fractional digits.
  if v_ts < '0001-01-01 00:00:00+00'::timestamptz or v_ts >= '10000-01-01 00:00:00+00'::timestamptz then
    return null;
  end if;
  return v_ts;
end;
$$;

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
      and ($v #>> '{}') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    when $t = 'boolean' then jsonb_typeof($v) = 'boolean'
    when $t in ('smallint', 'integer', 'bigint') then
      case
        when jsonb_typeof($v) <> 'number' or ($v #>> '{}') !~ '^-?\d{1,19}$' then false
        else ($v #>> '{}')::numeric between
          (case $t when 'smallint' then -32768 when 'integer' then -2147483648 else -9223372036854775808 end)
          and (case $t when 'smallint' then 32767 when 'integer' then 2147483647 else 9223372036854775807 end)
      end
    when $t like 'numeric%' then
      case
        when jsonb_typeof($v) not in ('number', 'string') then false
        when ($v #>> '{}') !~ '^-?\d{1,30}(\.\d{1,30})?$' then false
        when $t not like 'numeric(%,%)' then true
        -- numeric(p,s): fits without rounding (p and s read by position from the type text)
        else round(($v #>> '{}')::numeric, rtrim(split_part($t, ',', 2), ')')::int) = ($v #>> '{}')::numeric
          and abs(($v #>> '{}')::numeric) < 10::numeric ^ (
            split_part(substr($t, 9), ',', 1)::int - rtrim(split_part($t, ',', 2), ')')::int
          )
      end
    when $t in ('timestamp with time zone', 'timestamp without time zone', 'date') then
      jsonb_typeof($v) = 'string' and shopsync.try_timestamptz($v #>> '{}') is not null
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
    -- Room on each page (fillfactor) so the many status updates are HOT: no index entries.
    create temp table push_events (like shopsync.push_event, primary key (ord))
    with (fillfactor = 40) on commit delete rows;
    create index on pg_temp.push_events (row_id);
  else
    execute 'delete from pg_temp.push_events';  -- a second push in the same transaction
  end if;

  -- The batch (uuid checks inlined: a function call per value costs more than the check).
  execute $q$
    insert into pg_temp.push_events (ord, is_obj, event_id, tbl, op, row_id, base_version, has_base, data,
                                     client_ts, bad_ts, override, status, reason, message, rnd)
    select
      e.ord,
      jsonb_typeof(e.ev) = 'object',
      case when e.ev ->> 'event_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        then (e.ev ->> 'event_id')::uuid end,
      e.ev ->> 'table',
      e.ev ->> 'op',
      case when e.ev ->> 'row_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        then (e.ev ->> 'row_id')::uuid end,
      case when jsonb_typeof(e.ev -> 'base_version') = 'number' and (e.ev ->> 'base_version') ~ '^\d{1,15}$'
        then (e.ev ->> 'base_version')::bigint end,
      coalesce(jsonb_typeof(e.ev -> 'base_version'), 'null') <> 'null',
      case when jsonb_typeof(e.ev -> 'data') = 'object' then e.ev -> 'data' end,
      least(coalesce(ts.value, now()), now()),
      coalesce(jsonb_typeof(e.ev -> 'client_ts'), 'null') <> 'null' and ts.value is null,
      coalesce(e.ev -> 'override' = 'true'::jsonb, false),
      -- A row larger than sync_max_row_bytes (its data as jsonb, uncompressed) is refused here.
      case when pg_column_size(e.ev -> 'data') > $2 then 'rejected' else 'pending' end,
      case when pg_column_size(e.ev -> 'data') > $2 then 'row_too_large' end,
      case when pg_column_size(e.ev -> 'data') > $2 then
        format('the row is %s bytes; a row may have at most %s (sync_max_row_bytes)', pg_column_size(e.ev -> 'data'), $2)
      end,
      -- Rounds: the k-th event of a row in this batch is applied in round k, so several events for
      -- one row apply in order while each round stays set-wise.
      row_number() over (partition by e.ev ->> 'table', e.ev ->> 'row_id' order by e.ord)
    from jsonb_array_elements($1) with ordinality as e (ev, ord)
    cross join lateral (
      -- The common form (UTC, a day every month has) is cast directly; anything else is checked.
      select case
        when e.ev ->> 'client_ts' ~ '^(000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z$'
          then (e.ev ->> 'client_ts')::timestamptz
        else shopsync.try_timestamptz(e.ev ->> 'client_ts')
      end as value
    ) as ts
  $q$ using p_events, v_max_row;

  -- The planner needs the staged batch's size: without statistics it assumes one row and picks
  -- nested loops that are quadratic in the batch.
  analyze pg_temp.push_events;

  -- Shape checks that need no table: each first failing rule names the reason.
  execute $q$
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
      or (e.op <> 'insert' and e.base_version is null) or (e.op = 'insert' and e.has_base and e.base_version is null)
  $q$;
end;
$$;

create or replace function shopsync.pull(p_device_id uuid, p_cursor bigint, p_limit int)
returns jsonb
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
  v_changes jsonb;
  v_new_cursor bigint;
  v_limit int := least(greatest(coalesce(p_limit, 500), 1), 5000);
  v_max_bytes bigint := coalesce((shopsync.config_value('pull_max_page_bytes'))::bigint, 8388608);
  v_bytes bigint := 0;
  v_cut bigint;
  v_entry record;
begin
  select rd.shop_id into v_shop from shopsync.require_device(p_device_id, false) as rd;
  if p_cursor is null or p_cursor < 0 then
    raise exception 'p_cursor must be 0 or a cursor returned by sync_pull'
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
  select d.pull_floor into v_started_under from public.devices as d where d.id = p_device_id;
  if p_cursor > 0 and p_cursor < v_floor and coalesce(v_started_under, -1) < v_floor then
    update public.devices set last_pull_at = now(), last_seen_at = now() where id = p_device_id;
    return jsonb_build_object(
      'changes', '[]'::jsonb, 'cursor', 0, 'has_more', true, 'remaining', v_last,
      'reset_required', true, 'server_time', now()
    );
  end if;

  -- The page ends at v_limit entries or before the entry that would take its rows past
  -- pull_max_page_bytes, whichever comes first; it always holds at least one entry. A row's bytes
  -- are its jsonb size uncompressed: read from the stored header unless the value is compressed
  -- (then measured decompressed; the loop reads entries a few at a time, so few are measured
  -- beyond the cut).
  for v_entry in
    select cl.seq,
      case when pg_column_compression(cl.row) is null then pg_column_size(cl.row)
        else pg_column_size(cl.row || '{}'::jsonb) end as bytes
    from shopsync.change_log as cl
    where cl.shop_id = v_shop and cl.seq > p_cursor
    order by cl.seq
    limit v_limit
  loop
    exit when v_cut is not null and v_bytes + coalesce(v_entry.bytes, 0) > v_max_bytes;
    v_bytes := v_bytes + coalesce(v_entry.bytes, 0);
    v_cut := v_entry.seq;
  end loop;

  select
    coalesce(jsonb_agg(jsonb_build_object(
      'seq', p.seq, 'table', p.table_name, 'op', p.op, 'row_id', p.row_id, 'version', p.version, 'row', p.row
    ) order by p.seq), '[]'::jsonb),
    coalesce(max(p.seq), p_cursor)
  into v_changes, v_new_cursor
  from (
    select cl.seq, cl.table_name, cl.op, cl.row_id, cl.version, cl.row
    from shopsync.change_log as cl
    where cl.shop_id = v_shop and cl.seq > p_cursor and cl.seq <= v_cut
  ) as p;
  -- Nothing left after the cursor: the entries up to last_seq were purged; jump to the end.
  if v_changes = '[]'::jsonb then
    v_new_cursor := v_last;
  end if;

  update public.devices
  set last_cursor = greatest(last_cursor, v_new_cursor), last_pull_at = now(), last_seen_at = now()
  where id = p_device_id;

  return jsonb_build_object(
    'changes', v_changes,
    'cursor', v_new_cursor,
    'has_more', v_new_cursor < v_last,
    'remaining', v_last - v_new_cursor,
    'reset_required', false,
    'server_time', now()
  );
end;
$$;
