-- Device credentials (hardening, issue 12 item 1): acting as a device needs a secret only that
-- device holds.
--
-- Before: device ids are not secret (pulled rows carry last_device_id, invoices device_id) and
-- require_device checked only the shop, so any member could push, pull or register as any device
-- of their shop. Now:
--   * registering a new device returns `device_secret` ONCE (32 random bytes, base64url); the server
--     keeps only its SHA-256 in shopsync.device_credentials (no API role can read that table);
--   * every device RPC (sync_push, sync_pull, sync_register_device of an existing device,
--     sync_rotate_device_secret) reads the secret from the request header `x-device-secret`
--     (request.headers, as PostgREST and the local gateway set it); wrong or missing: PT403
--     device_credential_invalid; a device with no credential (registered before this migration, or
--     reset by an owner): PT403 device_credential_unclaimed, until it registers again;
--   * rotation (sync_rotate_device_secret, with the current secret) issues a new secret in two
--     phases: the old one stays valid until the new one is first used, so a lost answer never
--     locks a device out;
--   * an owner resets a device's credential (sync_reset_device_credential): the secret stops
--     working at once, and the next registration of that device by an owner or staff member issues
--     a new one;
--   * a device registered before this migration is claimed once: the member who registered it gets
--     a secret on their next registration call (residual risk: docs/security.md).
-- The secret belongs to the device, not to a user: any active member signed in on that device
-- uses it (the token says who, the secret says which device).

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table shopsync.device_credentials (
  device_id uuid primary key references public.devices (id) on delete cascade,
  secret_hash bytea,
  next_secret_hash bytea,
  issued_at timestamptz,
  issued_to uuid,
  reset_at timestamptz,
  reset_by uuid
);
comment on table shopsync.device_credentials is
'SHA-256 of each device''s secret (never the secret). secret_hash null: reset by an owner, claimable by '
'the next owner/staff registration. next_secret_hash: a rotation not yet used.';

-- The x-device-secret header of the current request, or null.
create or replace function shopsync.device_secret_header()
returns text
language sql
stable
set search_path = ''
as $$
  select nullif(nullif(pg_catalog.current_setting('request.headers', true), '')::json ->> 'x-device-secret', '')
$$;

-- A new secret for a device: stores its hash (replacing any), returns the secret itself.
create or replace function shopsync.issue_device_secret(p_device_id uuid)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_secret text := pg_catalog.rtrim(
    pg_catalog.translate(pg_catalog.encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '='
  );
begin
  insert into shopsync.device_credentials as c (device_id, secret_hash, next_secret_hash, issued_at, issued_to)
  values (p_device_id, extensions.digest(v_secret, 'sha256'), null, pg_catalog.now(), auth.uid())
  on conflict (device_id) do update
  set secret_hash = excluded.secret_hash, next_secret_hash = null, issued_at = excluded.issued_at,
    issued_to = excluded.issued_to;
  return v_secret;
end;
$$;

-- 'ok' when the request's secret is the device's (promoting a pending rotation on its first use),
-- 'unclaimed' when the device has no credential (registered before credentials, or reset),
-- 'invalid' otherwise.
create or replace function shopsync.device_credential_state(p_device_id uuid)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cred shopsync.device_credentials;
  v_hash bytea;
begin
  select * into v_cred from shopsync.device_credentials as c where c.device_id = p_device_id;
  if not found or v_cred.secret_hash is null then
    return 'unclaimed';
  end if;
  v_hash := extensions.digest(coalesce(shopsync.device_secret_header(), ''), 'sha256');
  if v_hash = v_cred.secret_hash then
    return 'ok';
  end if;
  if v_hash = v_cred.next_secret_hash then
    update shopsync.device_credentials as c
    set secret_hash = c.next_secret_hash, next_secret_hash = null, issued_at = pg_catalog.now()
    where c.device_id = p_device_id;
    return 'ok';
  end if;
  return 'invalid';
end;
$$;

-- Raises unless the request carries the device's secret.
create or replace function shopsync.require_device_secret(p_device_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_state text := shopsync.device_credential_state(p_device_id);
begin
  if v_state = 'unclaimed' then
    raise exception 'device % has no credential yet (registered before device credentials, or reset by an owner): register it again', p_device_id
      using errcode = 'PT403', detail = 'device_credential_unclaimed',
        hint = 'call sync_register_device from this device; it returns device_secret once';
  elsif v_state <> 'ok' then
    raise exception 'the x-device-secret header is missing or not this device''s secret'
      using errcode = 'PT403', detail = 'device_credential_invalid',
        hint = 'send the device_secret sync_register_device returned in the x-device-secret header';
  end if;
end;
$$;

create or replace function shopsync.require_device(p_device_id uuid, p_for_push boolean)
returns table (shop_id uuid, role text)
language plpgsql
volatile
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
  perform shopsync.require_device_secret(p_device_id);
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
  v_state text;
  v_secret text;
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

  select * into v_dev from public.devices as d where d.id = p_device_id for update;
  if found then
    if v_dev.shop_id <> v_shop then
      raise exception 'device % belongs to another shop', p_device_id
        using errcode = 'PT403', detail = 'device_other_shop';
    end if;
    if v_dev.revoked_at is not null then
      raise exception 'device % was revoked on %', p_device_id, v_dev.revoked_at
        using errcode = 'PT403', detail = 'device_revoked';
    end if;
    v_state := shopsync.device_credential_state(p_device_id);
    if v_state = 'invalid' then
      raise exception 'the x-device-secret header is missing or not this device''s secret'
        using errcode = 'PT403', detail = 'device_credential_invalid',
          hint = 'an owner can reset the device''s credential (sync_reset_device_credential); then register it again';
    elsif v_state = 'unclaimed' then
      if exists (select 1 from shopsync.device_credentials as c where c.device_id = p_device_id) then
        -- Reset by an owner: the next owner or staff registration takes it.
        if v_role = 'viewer' then
          raise exception 'device % was reset: an owner or staff member registers it again', p_device_id
            using errcode = 'PT403', detail = 'device_credential_unclaimed';
        end if;
      elsif v_dev.user_id is distinct from auth.uid() then
        -- Registered before credentials: only the member who registered it claims it.
        raise exception 'device % was registered before device credentials by another member: they register it again, or an owner resets it', p_device_id
          using errcode = 'PT403', detail = 'device_credential_unclaimed';
      end if;
      v_secret := shopsync.issue_device_secret(p_device_id);
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
    v_secret := shopsync.issue_device_secret(p_device_id);
  end if;
  return jsonb_build_object(
    'device_id', v_dev.id, 'shop_id', v_dev.shop_id, 'role', v_role, 'registered_at', v_dev.registered_at
  ) || case when v_secret is null then '{}'::jsonb else jsonb_build_object('device_secret', v_secret) end;
end;
$$;

-- Rotation: the device, with its current secret, gets a new one. The current secret stays valid
-- until the new one is first used (then it is gone), so an answer lost on the way never locks the
-- device out: it rotates again with the secret it still holds.
create or replace function shopsync.rotate_device_secret(p_device_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_secret text := pg_catalog.rtrim(
    pg_catalog.translate(pg_catalog.encode(extensions.gen_random_bytes(32), 'base64'), '+/', '-_'), '='
  );
begin
  perform 1 from shopsync.require_device(p_device_id, false);
  update shopsync.device_credentials as c
  set next_secret_hash = extensions.digest(v_secret, 'sha256')
  where c.device_id = p_device_id;
  return jsonb_build_object('device_id', p_device_id, 'device_secret', v_secret);
end;
$$;

-- An owner resets a device's credential: its secret (and any pending rotation) stops working at
-- once; the next registration of the device by an owner or staff member issues a new one.
create or replace function shopsync.reset_device_credential(p_device_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_shop uuid;
  v_role text;
begin
  select m.shop_id, m.role into v_shop, v_role from shopsync.require_member() as m;
  if v_role <> 'owner' then
    raise exception 'only an owner resets a device''s credential' using errcode = 'PT403', detail = 'role_forbidden';
  end if;
  if not exists (select 1 from public.devices as d where d.id = p_device_id and d.shop_id = v_shop) then
    raise exception 'device % is not registered in your shop', p_device_id
      using errcode = 'PT404', detail = 'device_not_registered';
  end if;
  insert into shopsync.device_credentials as c (device_id, secret_hash, next_secret_hash, reset_at, reset_by)
  values (p_device_id, null, null, pg_catalog.now(), auth.uid())
  on conflict (device_id) do update
  set secret_hash = null, next_secret_hash = null, reset_at = excluded.reset_at, reset_by = excluded.reset_by;
  insert into shopsync.audit_log (shop_id, actor, action, table_name, row_id)
  values (v_shop, auth.uid(), 'reset_device_credential', 'devices', p_device_id);
  return jsonb_build_object('device_id', p_device_id, 'reset', true);
end;
$$;

create or replace function public.sync_rotate_device_secret(p_device_id uuid)
returns jsonb
language sql
volatile
set search_path = ''
as $$
  select shopsync.rotate_device_secret(p_device_id)
$$;
comment on function public.sync_rotate_device_secret(uuid) is
'With the device''s current secret (x-device-secret header): a new device_secret; '
'the old one works until the new one is first used.';

create or replace function public.sync_reset_device_credential(p_device_id uuid)
returns jsonb
language sql
volatile
set search_path = ''
as $$
  select shopsync.reset_device_credential(p_device_id)
$$;
comment on function public.sync_reset_device_credential(uuid) is
'Owners: the device''s secret stops working; its next registration by an owner or staff member issues a new one.';

-- Privileges of this capability's objects.
revoke all on table shopsync.device_credentials from public, anon, authenticated, service_role;
revoke execute on function shopsync.device_secret_header() from public, anon, authenticated, service_role;
revoke execute on function shopsync.issue_device_secret(uuid) from public, anon, authenticated, service_role;
revoke execute on function shopsync.device_credential_state(uuid) from public, anon, authenticated, service_role;
revoke execute on function shopsync.require_device_secret(uuid) from public, anon, authenticated, service_role;
revoke execute on function shopsync.rotate_device_secret(uuid) from public, anon, service_role;
revoke execute on function shopsync.reset_device_credential(uuid) from public, anon, service_role;
revoke execute on function public.sync_rotate_device_secret(uuid) from public, anon;
revoke execute on function public.sync_reset_device_credential(uuid) from public, anon;
grant execute on function shopsync.rotate_device_secret(uuid) to authenticated;
grant execute on function shopsync.reset_device_credential(uuid) to authenticated;
grant execute on function public.sync_rotate_device_secret(uuid) to authenticated, service_role;
grant execute on function public.sync_reset_device_credential(uuid) to authenticated, service_role;
