-- sync_metrics: for owners, how their devices keep up and what their pushes produced.

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
        'lag', v_last - d.last_cursor
      ) order by d.registered_at)
      from public.devices as d where d.shop_id = v_shop
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
    ), '[]'::jsonb)
  );
end;
$$;

create or replace function public.sync_metrics()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select shopsync.metrics()
$$;
comment on function public.sync_metrics() is
'Owners only: per device last push/pull and lag; per day applied, merged, conflicts, rejected, duplicates.';
