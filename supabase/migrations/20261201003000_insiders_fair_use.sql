-- Insiders and fair use (hardening, issue 12 items 5 and 6).
--
-- No cross-shop effects in push (item 5). Before: a push named row ids and push_classify locked
-- them (`for update`) by id alone, so a push from shop B naming shop A's ids blocked A's writers
-- (their sales too, through the foreign-key checks), and an insert of such an id answered
-- `id_exists`. Now a step of the driver, push_scope, runs before any row is locked: an event whose
-- row id belongs to another shop is answered without touching that row (a plain index read, no
-- lock): update/delete exactly as for a free id (`not_found`, same message), insert `rejected` /
-- `id_unavailable` (ids are one global key, so that id cannot be inserted in any shop; the answer
-- says nothing more: not which shop, not whether the row is live, no server row).
--
-- Fair use (item 6):
--   * one push per device at a time: a second concurrent push of a device is answered at once with
--     PT429 / push_in_progress (pg_try_advisory_xact_lock on the device), retryable;
--   * failed and timed-out calls count: a call is counted first, and its work runs in a
--     subtransaction; when the work fails for lack of time or resources (statement timeout or
--     cancel, lock timeout, deadlock, serialization failure, program limit, out of memory) only the
--     work rolls back, the call answers PostgREST's error shape with `response.status` 503 and
--     commits, so its count stays;
--   * pull, verify_invoice_chain and registration are metered per user and minute
--     (shopsync.config `<kind>_calls_per_minute`), with the same rule for failures.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

insert into shopsync.config (key, value, description) values
('pull_calls_per_minute', '1200', 'Per-user sync_pull calls per minute before 429.'),
('verify_calls_per_minute', '30', 'Per-user verify_invoice_chain calls per minute before 429.'),
-- (Registration: clients register on first start, and several tills may be set up at once.)
('register_calls_per_minute', '600', 'Per-user sync_register_device calls per minute before 429.')
on conflict (key) do nothing;

-- Calls per user, kind and minute (pull, verify, register). Push keeps its per-device counter
-- (shopsync.device_rate).
create table shopsync.call_rate (
  user_id uuid not null,
  kind text not null,
  window_start timestamptz not null,
  calls bigint not null,
  primary key (user_id, kind)
);

-- A call's work failed for lack of time or resources: the answer in PostgREST's error shape, with
-- HTTP 503 (response.status) so clients retry later. The caller returns it instead of raising, so
-- its transaction commits and the call's count stays.
create or replace function shopsync.call_failed(p_state text, p_message text)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
begin
  perform set_config('response.status', '503', true);
  return jsonb_build_object(
    'code', p_state,
    'message', p_message,
    'details', case when p_state = '57014' then 'timed_out' else 'call_failed' end,
    'hint', 'nothing was applied; retry later (the call counts toward the rate limit)'
  );
end;
$$;

-- Count a call of the signed-in user; past the kind's limit per minute, PT429 rate_limited.
create or replace function shopsync.meter_call(p_kind text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user uuid := auth.uid();
  v_limit int;
  v_calls bigint;
begin
  if p_kind is null or p_kind not in ('pull', 'verify', 'register') then
    raise exception 'unknown call kind %', p_kind using errcode = 'PT400', detail = 'invalid_payload';
  end if;
  if v_user is null then
    return;  -- not signed in: the entry point refuses the call itself
  end if;
  v_limit := coalesce((shopsync.config_value(p_kind || '_calls_per_minute'))::int, 600);
  insert into shopsync.call_rate as r (user_id, kind, window_start, calls)
  values (v_user, p_kind, date_trunc('minute', now()), 1)
  on conflict (user_id, kind) do update
  set calls = case when r.window_start = excluded.window_start then r.calls + 1 else 1 end,
      window_start = excluded.window_start
  returning r.calls into v_calls;
  if v_calls > v_limit then
    raise exception 'more than % % calls per minute', v_limit, p_kind
      using errcode = 'PT429', detail = 'rate_limited', hint = 'retry after the current minute';
  end if;
end;
$$;

-- The advisory lock key of a device's push (64 bits of its id).
create or replace function shopsync.push_lock_key(p_device_id uuid)
returns bigint
language sql
immutable
set search_path = ''
as $$
  select ('x' || left(replace(p_device_id::text, '-', ''), 16))::bit(64)::bigint
$$;

-- 3b. Scope (before any row is read locked): events naming another shop's row never touch it.
create or replace function shopsync.push_scope(p_shop uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_tbl text;
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  for v_tbl in
    execute $q$
      select distinct e.tbl from pg_temp.push_events as e
      inner join shopsync.synced_tables as st on st.table_name = e.tbl
      where e.status = 'pending'
    $q$
  loop
    -- The same answer as for a free id (update, delete); an insert cannot take the id.
    execute format($q$
      update pg_temp.push_events as e
      set status = 'rejected',
          reason = case when e.op = 'insert' then 'id_unavailable' else 'not_found' end,
          message = case when e.op = 'insert'
            then format('%%s: id %%s is unavailable; insert the row under a new id', e.tbl, e.row_id)
            else format('%%s has no row %%s', e.tbl, e.row_id) end
      where e.tbl = $1 and e.status = 'pending'
        and exists (select from public.%1$I as x where x.id = e.row_id and x.shop_id <> $2)
    $q$, v_tbl) using v_tbl, p_shop;
  end loop;
end;
$$;

-- The driver: as before (20261122000500_push.sql), plus one push per device at a time, the scope
-- step, and failures of the work that count.
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
  exception
    when query_canceled or lock_not_available or deadlock_detected or serialization_failure
      or program_limit_exceeded or insufficient_resources then
      get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
      return shopsync.call_failed(v_state, v_msg);
  end;
end;
$$;

-- The public wrappers: metered, and a call whose work fails for lack of time or resources answers
-- 503 and still counts.
create or replace function public.sync_pull(p_device_id uuid, p_cursor bigint, p_limit int default 500)
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
    return shopsync.pull(p_device_id, p_cursor, p_limit);
  exception
    when query_canceled or lock_not_available or deadlock_detected or serialization_failure
      or program_limit_exceeded or insufficient_resources then
      get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
      return shopsync.call_failed(v_state, v_msg);
  end;
end;
$$;

create or replace function public.verify_invoice_chain(p_series text)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_state text;
  v_msg text;
begin
  perform shopsync.meter_call('verify');
  begin
    return shopsync.verify_my_chain(p_series);
  exception
    when query_canceled or lock_not_available or deadlock_detected or serialization_failure
      or program_limit_exceeded or insufficient_resources then
      get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
      return shopsync.call_failed(v_state, v_msg);
  end;
end;
$$;

create or replace function public.sync_register_device(p_device_id uuid, p_name text, p_platform text default null)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_state text;
  v_msg text;
begin
  perform shopsync.meter_call('register');
  begin
    return shopsync.register_device(p_device_id, p_name, p_platform);
  exception
    when query_canceled or lock_not_available or deadlock_detected or serialization_failure
      or program_limit_exceeded or insufficient_resources then
      get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
      return shopsync.call_failed(v_state, v_msg);
  end;
end;
$$;

-- Privileges of this capability's objects.
revoke all on shopsync.call_rate from public, anon, authenticated, service_role;
revoke execute on function shopsync.call_failed(text, text) from public, anon, authenticated, service_role;
revoke execute on function shopsync.meter_call(text) from public, anon, authenticated, service_role;
revoke execute on function shopsync.push_lock_key(uuid) from public, anon, authenticated, service_role;
revoke execute on function shopsync.push_scope(uuid) from public, anon, authenticated, service_role;
grant execute on function shopsync.meter_call(text) to authenticated;
grant execute on function shopsync.call_failed(text, text) to authenticated;
