-- sync_pull: the caller's shop's changes after a cursor, in commit order, a page at a time.
--
-- The cursor floor: retention purges tombstones and raises the shop's floor_seq; a device that may
-- hold rows whose delete entries were purged must start over (reset_required). A device that
-- started pulling from 0 at or after the current floor holds no such rows and may page on:
-- devices.pull_floor records the floor when the device last pulled from 0.

-- enable_seqscan = off: the page is an index range scan on (shop_id, seq) however fresh the
-- table's statistics are (see shopsync.push).
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

  select
    coalesce(jsonb_agg(jsonb_build_object(
      'seq', p.seq, 'table', p.table_name, 'op', p.op, 'row_id', p.row_id, 'version', p.version, 'row', p.row
    ) order by p.seq), '[]'::jsonb),
    coalesce(max(p.seq), p_cursor)
  into v_changes, v_new_cursor
  from (
    select cl.seq, cl.table_name, cl.op, cl.row_id, cl.version, cl.row
    from shopsync.change_log as cl
    where cl.shop_id = v_shop and cl.seq > p_cursor
    order by cl.seq
    limit v_limit
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

create or replace function public.sync_pull(p_device_id uuid, p_cursor bigint, p_limit int default 500)
returns jsonb
language sql
volatile
set search_path = ''
as $$
  select shopsync.pull(p_device_id, p_cursor, p_limit)
$$;
comment on function public.sync_pull(uuid, bigint, int) is
'Changes of the caller''s shop after p_cursor, in commit order. See README, Protocol v1.';
