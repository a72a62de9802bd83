-- A pull budget per device: tills sharing one login are not rate-limited by each other.
--
-- Before: pulls (sync_pull, sync_pull_v2, and the check's sync_checksums, sync_table_rows,
-- sync_report_repair) were metered per user: `pull_calls_per_minute` (1200) for all of a user's
-- devices together. Live sync makes every subscribed device pull once per change, so 100 tills
-- signed in as one user passed it at 12 changes a minute, 10 tills at 120 (two sales a second
-- in a busy shop), and their pulls answered PT429 until the window ended.
--
-- Now a user's pull budget is `pull_calls_per_minute` per active device of that user (at least
-- one): the limit a till had alone, whoever else shares its login. Devices are bounded by the
-- licence (`max_devices`) and registrations are metered, so a user cannot grow the budget at will.
-- The count is read only when a window passes the one-device limit: no query in the common case.
-- Verification of invoice chains and registration stay per user.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

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
  v_start timestamptz;
begin
  if p_kind is null or p_kind not in ('pull', 'verify', 'register') then
    raise exception 'unknown call kind %', p_kind using errcode = 'PT400', detail = 'invalid_payload';
  end if;
  if v_user is null then
    return;  -- not signed in: the entry point refuses the call itself
  end if;
  v_limit := coalesce((shopsync.config_value(p_kind || '_calls_per_minute'))::int, 600);
  insert into shopsync.call_rate as r (user_id, kind, window_start, calls)
  values (v_user, p_kind, now(), 1)
  on conflict (user_id, kind) do update
  set calls = case when r.window_start > excluded.window_start - interval '1 minute' then r.calls + 1 else 1 end,
      window_start = case when r.window_start > excluded.window_start - interval '1 minute'
        then r.window_start else excluded.window_start end
  returning r.calls, r.window_start into v_calls, v_start;
  if v_calls > v_limit and p_kind = 'pull' then
    -- Pulls: the limit is per active device of the user (read only past one device's limit).
    v_limit := v_limit * greatest(1, (
      select count(*) from public.devices as d where d.user_id = v_user and d.revoked_at is null
    ))::int;
  end if;
  if v_calls > v_limit then
    raise exception 'more than % % calls per minute', v_limit, p_kind
      using errcode = 'PT429', detail = 'rate_limited',
        hint = format('retry after %s (the rate window ends then)',
          to_char((v_start + interval '1 minute') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
  end if;
end;
$$;

comment on function shopsync.meter_call(text) is
'Counts a metered call of the signed-in user (pull, verify, register) in a one-minute window; past the '
'configured <kind>_calls_per_minute (for pulls: per active device of the user) raises PT429 rate_limited.';

-- Privileges as before (the entry points run it as the caller).
revoke execute on function shopsync.meter_call(text) from public, anon, authenticated, service_role;
grant execute on function shopsync.meter_call(text) to authenticated;
