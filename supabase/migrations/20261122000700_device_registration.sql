-- sync_register_device: a device joins the caller's shop, within the licence's device limit.

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

grant execute on function shopsync.register_device(uuid, text, text) to authenticated;

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
revoke execute on function public.sync_register_device(uuid, text, text) from public, anon;
grant execute on function public.sync_register_device(uuid, text, text) to authenticated;
