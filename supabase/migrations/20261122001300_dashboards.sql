-- Aggregates: one shop for its owner (shop_dashboard), every shop for the platform operator
-- (platform_overview, service_role only: authenticated and anon cannot execute it).

create or replace function shopsync.shop_summary(p_shop uuid)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'shop_id', s.id,
    'name', s.name,
    'licence', (
      select jsonb_build_object('plan', l.plan, 'max_devices', l.max_devices, 'valid_until', l.valid_until,
        'expired', l.valid_until <= now())
      from public.licenses as l where l.shop_id = s.id
    ),
    'devices_active', (
      select count(*) from public.devices as d
      where d.shop_id = s.id and d.revoked_at is null and d.last_seen_at > now() - interval '7 days'
    ),
    'last_sync', (select max(greatest(d.last_push_at, d.last_pull_at)) from public.devices as d where d.shop_id = s.id),
    'max_lag', (
      select coalesce(max(c.last_seq - d.last_cursor), 0)
      from public.devices as d inner join shopsync.shop_cursor as c on d.shop_id = c.shop_id
      where d.shop_id = s.id and d.revoked_at is null
    ),
    'conflicts_today', (
      select coalesce(sum(ps.conflicts), 0) from shopsync.push_stats as ps
      where ps.shop_id = s.id and ps.day = current_date
    ),
    'products', (select count(*) from public.products as p where p.shop_id = s.id and p.deleted_at is null),
    'stock_units', (select coalesce(sum(il.on_hand), 0) from public.inventory_levels as il where il.shop_id = s.id),
    'stock_value', (
      select coalesce(sum(il.on_hand * p.price), 0)
      from public.inventory_levels as il
      inner join public.products as p on il.product_id = p.id
      where il.shop_id = s.id
    ),
    'sales_per_day', coalesce((
      select jsonb_agg(jsonb_build_object('day', x.day, 'invoices', x.n, 'total', x.total) order by x.day desc)
      from (
        select (i.issued_at at time zone 'UTC')::date as day, count(*) as n,
          sum(case i.kind when 'credit_note' then -i.total else i.total end) as total
        from public.invoices as i
        where i.shop_id = s.id and i.issued_at > now() - interval '30 days'
        group by 1
      ) as x
    ), '[]'::jsonb)
  )
  from public.shops as s
  where s.id = p_shop
$$;

create or replace function shopsync.shop_dashboard()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if shopsync.current_shop_role() is distinct from 'owner' then
    raise exception 'only owners may read the shop dashboard' using errcode = 'PT403', detail = 'role_forbidden';
  end if;
  return shopsync.shop_summary(shopsync.current_shop_id());
end;
$$;

create or replace function public.shop_dashboard()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select shopsync.shop_dashboard()
$$;
comment on function public.shop_dashboard() is
'Owners: devices, lag, conflicts, stock, sales and licence of their shop.';

create or replace function shopsync.platform_overview()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(jsonb_agg(shopsync.shop_summary(s.id) order by s.name), '[]'::jsonb) from public.shops as s
$$;

create or replace function public.platform_overview()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select shopsync.platform_overview()
$$;
comment on function public.platform_overview() is
'Platform operator only (service_role key, never on a device): every shop''s summary.';
