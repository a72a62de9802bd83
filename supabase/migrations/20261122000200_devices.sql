-- Devices: the tills and apps of a shop. A device registers (sync_register_device) within its
-- licence's device limit; every push and pull checks it is registered in the caller's shop and not
-- revoked (shopsync.require_device).

create table public.devices (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  user_id uuid references auth.users (id) on delete set null,
  name text not null check (length(name) between 1 and 200),
  platform text,
  registered_at timestamptz not null default now(),
  last_seen_at timestamptz,
  last_push_at timestamptz,
  last_pull_at timestamptz,
  last_cursor bigint not null default 0,
  pull_floor bigint,
  revoked_at timestamptz
);
create index devices_shop_id_idx on public.devices (shop_id);
create index devices_user_id_idx on public.devices (user_id);
comment on table public.devices is 'Registered tills and apps. A revoked device can neither push nor pull.';

alter table public.devices enable row level security;
create policy devices_select on public.devices for select to authenticated
using (shop_id = (select shopsync.current_shop_id()));
create policy devices_update on public.devices for update to authenticated
using (shop_id = (select shopsync.current_shop_id()) and (select shopsync.current_shop_role()) = 'owner')
with check (shop_id = (select shopsync.current_shop_id()));

-- The caller's shop and role for a call made by one of its devices, or a whole-call error with a
-- machine-readable reason in DETAIL and an HTTP status in the SQLSTATE (PTxxx, as PostgREST maps it).
create or replace function shopsync.require_device(p_device_id uuid, p_for_push boolean)
returns table (shop_id uuid, role text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_shop uuid;
  v_role text;
  v_dev_shop uuid;
  v_revoked timestamptz;
begin
  select m.shop_id, m.role into v_shop, v_role from shopsync.require_member() as m;
  if p_device_id is null then
    raise exception 'p_device_id is required' using errcode = 'PT400', detail = 'invalid_payload';
  end if;
  select d.shop_id, d.revoked_at into v_dev_shop, v_revoked from public.devices as d where d.id = p_device_id;
  if v_dev_shop is null or v_dev_shop <> v_shop then
    raise exception 'device % is not registered in your shop; call sync_register_device first', p_device_id
      using errcode = 'PT404', detail = 'device_not_registered';
  end if;
  if v_revoked is not null then
    raise exception 'device % was revoked on %', p_device_id, v_revoked
      using errcode = 'PT403', detail = 'device_revoked';
  end if;
  if p_for_push and v_role = 'viewer' then
    raise exception 'viewers can pull but not push'
      using errcode = 'PT403', detail = 'role_forbidden';
  end if;
  return query select v_shop, v_role;
end;
$$;

create or replace function shopsync.register_device(p_device_id uuid, p_name text, p_platform text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_shop uuid;
  v_role text;
  v_dev public.devices;
  v_max int;
  v_active int;
begin
  select m.shop_id, m.role into v_shop, v_role from shopsync.require_member() as m;
  if p_device_id is null then
    raise exception 'p_device_id is required' using errcode = 'PT400', detail = 'invalid_payload';
  end if;
  if p_name is null or length(p_name) not between 1 and 200 then
    raise exception 'p_name must be 1 to 200 characters' using errcode = 'PT400', detail = 'invalid_payload';
  end if;

  -- Serialise registrations per shop so two devices cannot both take the last seat.
  perform 1 from public.licenses as l where l.shop_id = v_shop for update;
  select * into v_dev from public.devices as d where d.id = p_device_id;
  if found then
    if v_dev.shop_id <> v_shop then
      raise exception 'device % belongs to another shop', p_device_id
        using errcode = 'PT403', detail = 'device_other_shop';
    end if;
    if v_dev.revoked_at is not null then
      raise exception 'device % was revoked on %', p_device_id, v_dev.revoked_at
        using errcode = 'PT403', detail = 'device_revoked';
    end if;
    update public.devices set last_seen_at = now() where id = p_device_id;
  else
    select l.max_devices into v_max from public.licenses as l where l.shop_id = v_shop;
    select count(*) into v_active from public.devices as d where d.shop_id = v_shop and d.revoked_at is null;
    if v_max is null or v_active >= v_max then
      raise exception 'the licence allows % devices and % are registered', coalesce(v_max, 0), v_active
        using errcode = 'PT402', detail = 'device_limit_reached';
    end if;
    insert into public.devices (id, shop_id, user_id, name, platform, last_seen_at)
    values (p_device_id, v_shop, auth.uid(), p_name, p_platform, now())
    returning * into v_dev;
  end if;
  return jsonb_build_object(
    'device_id', v_dev.id, 'shop_id', v_dev.shop_id, 'role', v_role, 'registered_at', v_dev.registered_at
  );
end;
$$;

create or replace function public.sync_register_device(p_device_id uuid, p_name text, p_platform text default null)
returns jsonb
language sql
volatile
set search_path = ''
as $$
  select shopsync.register_device(p_device_id, p_name, p_platform)
$$;
comment on function public.sync_register_device(uuid, text, text) is
'Register (idempotently) this device in the caller''s shop. Refused past the licence''s max_devices or when revoked.';
