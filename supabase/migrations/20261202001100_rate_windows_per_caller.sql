-- Rate windows that a minute boundary cannot split (issue 12, fair use).
--
-- Before: shopsync.check_push_rate (per device) and shopsync.meter_call (per user and kind)
-- counted per calendar minute (`date_trunc('minute', now())`): a burst straddling a minute boundary
-- started counting again from one, so a device could make twice its limit within a few seconds,
-- and a test that made its calls across a boundary was never limited (flaky).
--
-- Now a window opens at the first call after the previous window ended and lasts one minute; every
-- call inside it counts toward the same total (refused calls too; they do not extend the window),
-- so a burst is counted whole whatever the clock's minute. At most the limit is accepted within a
-- window; two windows back to back accept at most twice the limit within any 60 seconds (as
-- before). The refusal's hint says when the window ends.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function shopsync.check_push_rate(p_device_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_limit int := coalesce((shopsync.config_value('push_calls_per_minute'))::int, 600);
  v_calls int;
  v_start timestamptz;
begin
  insert into shopsync.device_rate as r (device_id, window_start, calls)
  values (p_device_id, now(), 1)
  on conflict (device_id) do update
  set calls = case when r.window_start > excluded.window_start - interval '1 minute' then r.calls + 1 else 1 end,
      window_start = case when r.window_start > excluded.window_start - interval '1 minute'
        then r.window_start else excluded.window_start end
  returning r.calls, r.window_start into v_calls, v_start;
  if v_calls > v_limit then
    raise exception 'device % exceeded % pushes per minute', p_device_id, v_limit
      using errcode = 'PT429', detail = 'rate_limited',
        hint = format('retry after %s (the device''s rate window ends then)',
          to_char((v_start + interval '1 minute') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
  end if;
end;
$$;

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
  if v_calls > v_limit then
    raise exception 'more than % % calls per minute', v_limit, p_kind
      using errcode = 'PT429', detail = 'rate_limited',
        hint = format('retry after %s (the rate window ends then)',
          to_char((v_start + interval '1 minute') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
  end if;
end;
$$;
