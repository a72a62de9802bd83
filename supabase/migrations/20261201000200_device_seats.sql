-- Seats (hardening, issue 12 item 7): no path, RPC or table, exceeds the licence.
--
-- Before: an owner could un-revoke devices through the table path past max_devices, and write the
-- server's columns of a device (cursor, pull floor, user); a viewer could register devices and take
-- the last seats. Now:
--   * one seat rule (shopsync.require_seat) serves registration and un-revoking;
--   * through the table path an owner may rename a device and revoke or un-revoke it, nothing else;
--   * p_platform is at most 100 characters (it was unbounded);
--   * owners and staff register devices; a viewer uses a device an owner or staff member registered
--     (registering an existing device again, as clients do on start, stays allowed).

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function shopsync.require_seat(p_shop uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_max int;
  v_active int;
begin
  -- The licence row serialises seat takers of one shop, so two cannot both take the last seat.
  select l.max_devices into v_max from public.licenses as l where l.shop_id = p_shop for update;
  select count(*) into v_active from public.devices as d where d.shop_id = p_shop and d.revoked_at is null;
  if v_max is null or v_active >= v_max then
    raise exception 'the licence allows % devices and % are registered', coalesce(v_max, 0), v_active
      using errcode = 'PT402', detail = 'device_limit_reached';
  end if;
end;
$$;
comment on function shopsync.require_seat(uuid) is
'Raises PT402 device_limit_reached unless the shop''s licence has a free seat; locks the licence row.';

-- The table path's seat check: the caller's own shop only (RLS already limits updates to it).
create or replace function shopsync.require_seat_in_my_shop()
returns void
language sql
security definer
set search_path = ''
as $$
  select shopsync.require_seat(shopsync.current_shop_id())
$$;

create or replace function shopsync.devices_table_path_rules()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if current_user <> 'authenticated' then
    return new;  -- the server's own functions (security definer) and the platform
  end if;
  if (to_jsonb(new) - 'name' - 'revoked_at') is distinct from (to_jsonb(old) - 'name' - 'revoked_at') then
    raise exception 'only a device''s name and revoked_at can be changed directly; the rest is the server''s'
      using errcode = '42501', detail = 'server_owned_column';
  end if;
  if old.revoked_at is not null and new.revoked_at is null then
    perform shopsync.require_seat_in_my_shop();
  end if;
  return new;
end;
$$;
comment on function shopsync.devices_table_path_rules() is
'Table-path updates of devices: name and revoked_at only; un-revoking takes a seat.';

create trigger devices_table_path_rules before update on public.devices
for each row execute function shopsync.devices_table_path_rules();

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
begin
  select m.shop_id, m.role into v_shop, v_role from shopsync.require_member() as m;
  if p_device_id is null then
    raise exception 'p_device_id is required' using errcode = 'PT400', detail = 'invalid_payload';
  end if;
  if p_name is null or length(p_name) not between 1 and 200 then
    raise exception 'p_name must be 1 to 200 characters' using errcode = 'PT400', detail = 'invalid_payload';
  end if;
  if length(p_platform) > 100 then
    raise exception 'p_platform must be at most 100 characters' using errcode = 'PT400', detail = 'invalid_payload';
  end if;

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
    if v_role = 'viewer' then
      raise exception 'viewers cannot register devices: an owner or staff member registers this one'
        using errcode = 'PT403', detail = 'viewer_cannot_register';
    end if;
    perform shopsync.require_seat(v_shop);
    insert into public.devices (id, shop_id, user_id, name, platform, last_seen_at)
    values (p_device_id, v_shop, auth.uid(), p_name, p_platform, now())
    returning * into v_dev;
  end if;
  return jsonb_build_object(
    'device_id', v_dev.id, 'shop_id', v_dev.shop_id, 'role', v_role, 'registered_at', v_dev.registered_at
  );
end;
$$;

-- Privileges of this capability's objects.
revoke execute on function shopsync.require_seat(uuid) from public, anon, authenticated, service_role;
revoke execute on function shopsync.require_seat_in_my_shop() from public, anon, service_role;
revoke execute on function shopsync.devices_table_path_rules() from public, anon, authenticated, service_role;
grant execute on function shopsync.require_seat_in_my_shop() to authenticated;
