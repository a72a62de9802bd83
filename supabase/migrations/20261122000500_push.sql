-- sync_push: a batch of device events applied exactly once, set-wise per table, with optimistic
-- concurrency and the table's conflict policy. See README "Protocol v1" for the contract.
--
-- shopsync.push checks the call, then runs the steps, each a function of its own working on the
-- batch staged in pg_temp.push_events: stage, claim, validate, apply per table (classify, the
-- table's validator, stale events, write, server rows of conflicts), record.

insert into shopsync.config (key, value, description) values
('push_max_events', '1000', 'Most events one sync_push call may carry.'),
('push_calls_per_minute', '600', 'Per-device sync_push calls per minute before 429.');

-- Exactly once: one row per (shop, event_id), claimed before the event is applied and holding its
-- result after, in the same transaction as the effect. A concurrent retry of the same event waits on
-- the claim and then sees the stored result.
create table shopsync.push_results (
  shop_id uuid not null,
  event_id uuid not null,
  device_id uuid not null,
  result jsonb,
  created_at timestamptz not null default now(),
  primary key (shop_id, event_id)
)
-- A claim is filled with its result in the same transaction: room on the page keeps that update HOT.
-- (No index on created_at: only the daily retention reads it, with one scan.)
with (fillfactor = 50);

create table shopsync.device_rate (
  device_id uuid primary key,
  window_start timestamptz not null,
  calls integer not null
);

create table shopsync.push_stats (
  shop_id uuid not null,
  device_id uuid not null,
  day date not null,
  pushes integer not null default 0,
  applied integer not null default 0,
  merged integer not null default 0,
  conflicts integer not null default 0,
  rejected integer not null default 0,
  duplicates integer not null default 0,
  primary key (shop_id, day, device_id)
);

-- The working row of one event inside a push (the temp table pg_temp.push_events has this shape).
create type shopsync.push_event as (
  ord int,
  is_obj boolean,
  event_id uuid,
  tbl text,
  op text,
  row_id uuid,
  base_version bigint,
  has_base boolean,
  data jsonb,
  client_ts timestamptz,
  bad_ts boolean,
  override boolean,
  rnd int,
  status text,
  reason text,
  message text,
  version bigint,
  server_row jsonb,
  cur_version bigint,
  cur_shop uuid,
  cur_deleted boolean,
  dup_of int,
  stored jsonb
);

create or replace function shopsync.check_push_rate(p_device_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_limit int := coalesce((shopsync.config_value('push_calls_per_minute'))::int, 600);
  v_calls int;
begin
  insert into shopsync.device_rate as r (device_id, window_start, calls)
  values (p_device_id, date_trunc('minute', now()), 1)
  on conflict (device_id) do update
  set calls = case when r.window_start = excluded.window_start then r.calls + 1 else 1 end,
      window_start = excluded.window_start
  returning r.calls into v_calls;
  if v_calls > v_limit then
    raise exception 'device % exceeded % pushes per minute', p_device_id, v_limit
      using errcode = 'PT429', detail = 'rate_limited', hint = 'retry after the current minute';
  end if;
end;
$$;

-- Map an error raised while applying one event to a rejection reason.
create or replace function shopsync.reason_for_sqlstate(p_state text)
returns text
language sql
immutable
set search_path = ''
as $$
  select case
    when p_state = '23503' then 'invalid_reference'
    when p_state = '23514' then 'check_violation'
    when p_state = '23502' then 'missing_column'
    when p_state = '23505' then 'unique_violation'
    when p_state = 'SS003' then 'invalid_transition'
    when p_state = 'SS001' then 'read_only_column'
    when p_state = 'SS101' then 'number_gap'
    when p_state = 'SS102' then 'chain_broken'
    when p_state = 'SS103' then 'totals_mismatch'
    when p_state = 'SS104' then 'series_taken'
    when p_state = 'SS105' then 'hash_mismatch'
    when p_state = 'SS106' then 'invalid_lines'
    when p_state = 'SS107' then 'append_only'
    when p_state like '22%' then 'invalid_value'
    else 'rejected_by_database'
  end
$$;

-- 1. Stage: the batch into pg_temp.push_events, one row per event, each parsed once; malformed
-- events are rejected here with the first rule they break.
create or replace function shopsync.push_stage(p_events jsonb)
returns void
language plpgsql
set search_path = ''
as $$
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
                                     client_ts, bad_ts, override, status, rnd)
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
      'pending',
      -- Rounds: the k-th event of a row in this batch is applied in round k, so several events for
      -- one row apply in order while each round stays set-wise.
      row_number() over (partition by e.ev ->> 'table', e.ev ->> 'row_id' order by e.ord)
    from jsonb_array_elements($1) with ordinality as e (ev, ord)
    cross join lateral (
      -- The common form (UTC, a day every month has) is cast directly; anything else is checked.
      select case
        when e.ev ->> 'client_ts' ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z$'
          then (e.ev ->> 'client_ts')::timestamptz
        else shopsync.try_timestamptz(e.ev ->> 'client_ts')
      end as value
    ) as ts
  $q$ using p_events;

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

-- 2. Claim (exactly once), before any rule that reads the catalog: a replayed event answers with
-- its stored result even if the rules it once passed have changed since.
create or replace function shopsync.push_claim(p_shop uuid, p_device_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
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
  execute $q$
    update pg_temp.push_events as e
    set status = 'duplicate', stored = r.result
    from shopsync.push_results as r
    where e.status = 'pending' and r.shop_id = $1 and r.event_id = e.event_id and r.result is not null
  $q$ using p_shop;
end;
$$;

-- 3. Validate: what the catalog says about each claimed event's table, columns and values.
create or replace function shopsync.push_validate(p_role text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  -- Table-level rules: known table, policy, role.
  execute $q$
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
          else format('role %s may not write %s', $1, e.tbl)
        end
    from pg_temp.push_events as e2
    left join shopsync.synced_tables as st on st.table_name = e2.tbl
    where e2.ord = e.ord and e.status = 'pending'
      and (st.table_name is null or st.policy = 'server_only'
           or (st.policy = 'append_only' and e.op <> 'insert') or not ($1 = any (st.write_roles)))
  $q$ using p_role;

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

-- 4. Apply one table's events of one round: classify, the table's own validator, stale events,
-- write, conflicts' server rows.
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
    execute format('select %s($1, $2, $3)', p_validator) using p_shop, p_role, p_round;
  end if;
  -- (A validator only rejects: no stale event after classifying means none now.)
  if v_stale > 0 then
    perform shopsync.push_resolve_stale(p_shop, p_device_id, p_table, p_policy, p_round);
  end if;
  perform shopsync.push_write(p_shop, p_table, p_round);
  perform shopsync.push_attach_server_rows(p_shop, p_table, p_round);
end;
$$;

-- 4a. The group's rows as they are now, locked, and each event classified against them: go,
-- stale (its base is older), conflict or rejected. Returns how many are stale.
create or replace function shopsync.push_classify(p_shop uuid, p_table text, p_round int)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_stale bigint;
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  -- Current state of the rows, locked. (Driven from the staged events, one index lookup
  -- each: the batch's size is never known to the planner.)
  execute format($q$
    select 1 from pg_temp.push_events as p
    inner join public.%1$I as x on x.id = p.row_id
    where p.tbl = $1 and p.rnd = $2 and p.status = 'pending'
    for update of x
  $q$, p_table) using p_table, p_round;
  execute format($q$
    update pg_temp.push_events as e
    set cur_version = x.version, cur_shop = x.shop_id, cur_deleted = x.deleted_at is not null
    from public.%1$I as x
    where x.id = e.row_id and e.tbl = $1 and e.rnd = $2 and e.status = 'pending'
  $q$, p_table) using p_table, p_round;

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

-- 4b. Stale events: merged, partly applied or conflicting, by the table's policy.
create or replace function shopsync.push_resolve_stale(
  p_shop uuid, p_device_id uuid, p_table text, p_policy text, p_round int
)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_ev record;
  v_all_cols text[];
  v_srv jsonb;
  v_hist_n bigint;
  v_row_ts timestamptz;
  v_overlap text[];
  v_losers text[];
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  -- Stale bases: what changed on the server since base_version (other devices' changes
  -- only: a device never conflicts with itself) decides, by the table's policy.
  select array_agg(c.column_name order by c.column_name) into v_all_cols
  from shopsync.table_columns(p_table) as c where not c.is_system;
  for v_ev in
    execute $q$
      select e.ord, e.row_id, e.op, e.base_version, e.cur_version, e.data, e.client_ts
      from pg_temp.push_events as e where e.tbl = $1 and e.rnd = $2 and e.status = 'stale' order by e.ord
    $q$ using p_table, p_round
  loop
    select count(*) into v_hist_n
    from shopsync.change_log as cl
    where cl.shop_id = p_shop and cl.table_name = p_table and cl.row_id = v_ev.row_id
      and cl.version > v_ev.base_version;
    if v_hist_n = v_ev.cur_version - v_ev.base_version then
      select coalesce(jsonb_object_agg(x.col, x.ts), '{}'::jsonb) into v_srv
      from (
        select c.col, max(cl.client_ts) as ts
        from shopsync.change_log as cl
        cross join lateral unnest(coalesce(cl.changed_columns, v_all_cols)) as c (col)
        where cl.shop_id = p_shop and cl.table_name = p_table and cl.row_id = v_ev.row_id
          and cl.version > v_ev.base_version and cl.device_id is distinct from p_device_id
        group by c.col
      ) as x;
    else
      -- History trimmed by retention: assume every column changed, as of the row's last write.
      execute format('select client_changed_at from public.%I where id = $1', p_table)
        into v_row_ts using v_ev.row_id;
      select jsonb_object_agg(c, v_row_ts) into v_srv from unnest(v_all_cols) as c;
    end if;

    select coalesce(array_agg(k), '{}') into v_overlap
    from (
      select k from jsonb_object_keys(coalesce(v_ev.data, '{}'::jsonb)) as k where v_ev.op = 'update'
      union
      select k from unnest(v_all_cols) as k where v_ev.op = 'delete'
    ) as ek
    where v_srv ? k;

    if cardinality(v_overlap) = 0 then
      execute 'update pg_temp.push_events set status = ''go_merge'' where ord = $1' using v_ev.ord;
    elsif p_policy <> 'last_write_wins' then
      execute $q$
        update pg_temp.push_events set status = 'conflict', reason = 'concurrent_update',
          message = format('changed on the server since version %s: %s', base_version, array_to_string($2, ', '))
        where ord = $1
      $q$ using v_ev.ord, v_overlap;
    else
      -- Last write wins per column; ties go to the server.
      select coalesce(array_agg(k), '{}') into v_losers
      from unnest(v_overlap) as k where not (v_ev.client_ts > (v_srv ->> k)::timestamptz);
      if cardinality(v_losers) = 0 then
        execute 'update pg_temp.push_events set status = ''go_merge'' where ord = $1' using v_ev.ord;
      elsif v_ev.op = 'delete' or (v_ev.data - v_losers) = '{}'::jsonb then
        execute $q$
          update pg_temp.push_events set status = 'conflict', reason = 'overridden',
            message = format('newer server values kept for: %s', array_to_string($2, ', '))
          where ord = $1
        $q$ using v_ev.ord, v_losers;
      else
        execute $q$
          update pg_temp.push_events set status = 'go_partial', data = data - $2, reason = 'overridden',
            message = format('newer server values kept for: %s', array_to_string($2, ', '))
          where ord = $1
        $q$ using v_ev.ord, v_losers;
      end if;
    end if;
  end loop;
end;
$$;

-- 4c. Write the group: one insert and one update statement; if the table refuses either, the
-- group again one event at a time, so only the culprits are rejected.
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
  v_n_ins bigint;
  v_n_upd bigint;
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  select ws.insert_sql, ws.update_sql into v_insert_sql, v_update_sql
  from shopsync.push_write_statements(p_table) as ws;

  -- Only the statements the group needs (an empty update still costs a join with the table).
  execute $q$
    select count(*) filter (where e.op = 'insert' and e.status = 'go'),
           count(*) filter (where e.op <> 'insert' and e.status in ('go', 'go_merge', 'go_partial'))
    from pg_temp.push_events as e where e.tbl = $1 and e.rnd = $2
  $q$ into v_n_ins, v_n_upd using p_table, p_round;
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
        select e.ord, e.op from pg_temp.push_events as e
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
        execute $q$
          update pg_temp.push_events
          set status = case when $4 then 'conflict' else 'rejected' end,
              reason = case when $4 then 'id_exists' else shopsync.reason_for_sqlstate($2) end,
              message = $3
          where ord = $1
        $q$ using v_ev.ord, v_state, v_msg, (v_state = '23505' and v_ev.op = 'insert' and v_constraint like '%\_pkey');
      end;
    end loop;
  end;

  -- What was applied: the group's statements succeeded, or the fallback rejected the rest.
  execute $q$
    update pg_temp.push_events as e
    set status = case e.status when 'go' then 'applied' when 'go_merge' then 'merged' else 'conflict' end,
        version = case when e.op = 'insert' then 1 else e.cur_version + 1 end
    where e.tbl = $1 and e.rnd = $2 and e.status in ('go', 'go_merge', 'go_partial')
  $q$ using p_table, p_round;
end;
$$;

-- 4c, its statements: for a table, one insert and one update over the staged events of a round
-- ($1 table, $2 round, $3 shop; $4 one event's ord, or null for all of them).
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
    where e.row_id = t.id and t.shop_id = $3 and e.tbl = $1 and e.rnd = $2
      and e.status in ('go', 'go_merge', 'go_partial') and e.op <> 'insert' and ($4::int is null or e.ord = $4)
  $q$, p_table, v_upd_sets);
end;
$$;

-- 4d. Conflicts carry the server's row (never another shop's).
create or replace function shopsync.push_attach_server_rows(p_shop uuid, p_table text, p_round int)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_n_conflict bigint;
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  execute $q$
    select count(*) from pg_temp.push_events as e where e.tbl = $1 and e.rnd = $2 and e.status = 'conflict'
  $q$ into v_n_conflict using p_table, p_round;
  if v_n_conflict = 0 then
    return;
  end if;
  execute format($q$
    update pg_temp.push_events as e set server_row = to_jsonb(t), version = coalesce(e.version, t.version)
    from public.%1$I as t
    where t.id = e.row_id and t.shop_id = $3 and e.tbl = $1 and e.rnd = $2 and e.status = 'conflict'
  $q$, p_table) using p_table, p_round, p_shop;
end;
$$;

-- 5. Record: results stored with the effect (rejections leave no trace), the day's statistics, the
-- device's last push; the answer in event order with the shop's cursor.
create or replace function shopsync.push_record(p_shop uuid, p_device_id uuid, p_events jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_results jsonb;
  v_counts record;
  v_cursor bigint;
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  execute $q$
    update pg_temp.push_events as e
    set status = 'rejected', reason = coalesce(e.reason, 'not_applied')
    where e.status in ('pending', 'go', 'go_merge', 'go_partial', 'stale')
  $q$;
  execute $q$
    with fin as (
      select e.event_id, jsonb_build_object(
        'event_id', e.event_id, 'status', e.status, 'version', e.version, 'reason', e.reason,
        'server_row', e.server_row, 'message', e.message) as result
      from pg_temp.push_events as e
      where e.status in ('applied', 'merged', 'conflict') and e.dup_of is null
    ),
    dropped as (
      delete from shopsync.push_results as r
      using pg_temp.push_events as e
      where r.shop_id = $1 and r.event_id = e.event_id and e.status = 'rejected' and e.dup_of is null
        and r.result is null
    )
    update shopsync.push_results as r set result = fin.result
    from fin where r.shop_id = $1 and r.event_id = fin.event_id
  $q$ using p_shop;

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

-- enable_seqscan = off: every join here is driven by the batch (a temp table) into real tables by
-- key. When a table has grown fast and autovacuum has not analyzed it yet, the planner believes it
-- is tiny and scans it once per event: measured, 60k result rows took single pushes past the 8 s
-- statement timeout. Without seq scans on the table side, those plans stay index lookups. (jit is
-- off because disabled seq scans inflate estimated costs past JIT's threshold.)
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
  perform shopsync.check_push_rate(p_device_id);
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  perform set_config('shopsync.device_id', p_device_id::text, true);
  perform set_config('shopsync.in_push', 'on', true);

  perform shopsync.push_stage(p_events);
  perform shopsync.push_claim(v_shop, p_device_id);
  perform shopsync.push_validate(v_role);

  -- Rounds (numbered at staging): the k-th event of a row applies in round k; within a round, tables
  -- in apply order.
  execute 'select coalesce(max(rnd), 0) from pg_temp.push_events where status = ''pending''' into v_rounds;
  for r in 1..v_rounds loop
    for v_t in
      execute $q$
        select st.table_name, st.policy, st.validator
        from shopsync.synced_tables as st
        where st.table_name in (select x.tbl from pg_temp.push_events as x where x.rnd = $1 and x.status = 'pending')
        order by st.apply_order, st.table_name
      $q$ using r
    loop
      perform shopsync.push_apply_table(v_shop, v_role, p_device_id, v_t.table_name, v_t.policy, v_t.validator, r);
    end loop;
  end loop;

  return shopsync.push_record(v_shop, p_device_id, p_events);
end;
$$;

create or replace function public.sync_push(p_device_id uuid, p_events jsonb)
returns jsonb
language sql
volatile
set search_path = ''
as $$
  select shopsync.push(p_device_id, p_events)
$$;
comment on function public.sync_push(uuid, jsonb) is
'Apply a batch of device events exactly once. See README, Protocol v1.';
