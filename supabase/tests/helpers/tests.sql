-- pgTAP helpers in the test-only schema `tests`: loaded once into the database by the test run
-- (scripts/pgtap.sh, before pg_prove) and dropped after it; never by a migration.
--
-- Acting as someone is a procedure (`call tests.authenticate_as(...)`): a CALL prints nothing into
-- the TAP stream, where `select set_config(...)` would print its value. Like `set local`, what
-- they set lasts until the test's transaction ends. They carry no `set search_path` clause on
-- purpose: a function's SET clause undoes the transaction-local settings made inside it, the very
-- thing these helpers are for (every name in them is schema-qualified instead).

set client_min_messages = warning;
drop schema if exists tests cascade;
create schema tests;
comment on schema tests is 'pgTAP helpers (supabase/tests/helpers); loaded by the test run only.';
-- Helpers are called again after the role has switched to an API role.
grant usage on schema tests to anon, authenticated, service_role;

-- The seeded user with this email (supabase/seed.sql: owner@shop-a.test, staff@shop-a.test,
-- viewer@shop-a.test, owner@shop-b.test, staff@shop-b.test) or one a test made, and the shop of
-- their oldest membership (revoked or not). Security definer: a test switches users while acting
-- as an API role, which may not read auth.users nor other shops' memberships.
create function tests.user_and_shop(p_email text)
returns table (user_id uuid, shop_id uuid)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return query
  select u.id, (
    select m.shop_id from public.shop_members as m
    where m.user_id = u.id
    order by m.created_at, m.shop_id
    limit 1
  )
  from auth.users as u
  where u.email = p_email;
  if not found then
    raise exception 'tests.user_and_shop: no user with email %', p_email;
  end if;
end;
$$;

-- Act as an API role with exactly these JWT claims, as the gateway (PostgREST) sets them per
-- request: role from the claim "role" (authenticated when absent), claims in request.jwt.claims.
create procedure tests.authenticate_as_claims(p_claims jsonb)
language plpgsql
as $$
begin
  perform pg_catalog.set_config('request.jwt.claims', p_claims::text, true);
  perform pg_catalog.set_config('role', coalesce(p_claims ->> 'role', 'authenticated'), true);
end;
$$;

-- Act as a signed-in user, with the shop the access-token hook puts into app_metadata: by default
-- the one of the user's oldest membership, or p_shop (say, another shop's id).
create procedure tests.authenticate_as(p_email text, p_shop uuid default null)
language plpgsql
as $$
declare
  v_user uuid;
  v_shop uuid;
begin
  select us.user_id, coalesce(p_shop, us.shop_id) into v_user, v_shop from tests.user_and_shop(p_email) as us;
  call tests.authenticate_as_claims(jsonb_build_object(
    'sub', v_user, 'role', 'authenticated', 'app_metadata', jsonb_build_object('shop_id', v_shop)
  ));
end;
$$;

-- Act as an app before sign-in (the anon key).
create procedure tests.authenticate_as_anon()
language plpgsql
as $$
begin
  call tests.authenticate_as_claims('{"role": "anon"}');
end;
$$;

-- Back to the test's own role (postgres), without claims.
create procedure tests.clear_authentication()
language plpgsql
as $$
begin
  perform pg_catalog.set_config('request.jwt.claims', '', true);
  perform pg_catalog.set_config('role', 'none', true);
end;
$$;

-- Send this device secret with the following RPCs (the x-device-secret header, in request.headers
-- as the gateway sets it); null sends none.
create procedure tests.use_device_secret(p_secret text)
language plpgsql
as $$
begin
  perform pg_catalog.set_config(
    'request.headers',
    case when p_secret is null then '{}' else pg_catalog.json_build_object('x-device-secret', p_secret)::text end,
    true
  );
end;
$$;

-- The secret every device registered through tests.register_device holds (see there).
create function tests.device_secret()
returns text
language sql
immutable
as $$
  select 'tests-device-secret-0123456789abcdef0123456789ab'::text
$$;

-- Test-only: make p_device_id's credential tests.device_secret() (security definer: the credential
-- table is the server's own, readable by no API role).
create function tests.give_device_the_test_secret(p_device_id uuid)
returns void
language sql
security definer
set search_path = ''
as $$
  update shopsync.device_credentials
  set secret_hash = extensions.digest(tests.device_secret(), 'sha256'), next_secret_hash = null
  where device_id = p_device_id
$$;

-- Register (a new device, or again an existing one) in the acting user's shop through the RPC a
-- till calls, and remember its credential: the device then holds tests.device_secret(), which is
-- set into request.headers for every later RPC of the test. All devices registered this way share
-- that one secret, so a test may alternate devices without switching headers; the device
-- credential tests (supabase/tests/devices) use the real issued secrets instead
-- (tests.register_device_secret).
create procedure tests.register_device(p_device_id uuid, p_name text default 'till')
language plpgsql
as $$
declare
  v_out jsonb;
begin
  call tests.use_device_secret(tests.device_secret());
  v_out := public.sync_register_device(p_device_id, p_name);
  if v_out ? 'device_secret' then
    perform tests.give_device_the_test_secret(p_device_id);
  end if;
end;
$$;

-- Register through the RPC with the request's current headers; returns the device_secret the
-- server issued (null when it issued none).
create function tests.register_device_secret(p_device_id uuid, p_name text default 'till')
returns text
language plpgsql
as $$
begin
  return public.sync_register_device(p_device_id, p_name) ->> 'device_secret';
end;
$$;

-- A fresh shop with its licence (valid for a year unless said otherwise).
create function tests.create_shop(
  p_name text default 'Test shop',
  p_max_devices integer default 3,
  p_valid_until timestamptz default pg_catalog.now() + interval '1 year'
)
returns uuid
language plpgsql
as $$
declare
  v_shop uuid := pg_catalog.gen_random_uuid();
begin
  insert into public.shops (id, name) values (v_shop, p_name);
  insert into public.licenses (shop_id, max_devices, valid_until) values (v_shop, p_max_devices, p_valid_until);
  return v_shop;
end;
$$;

-- A fresh user (auth.users), member of p_shop with p_role; returns the user's id.
create function tests.create_member(p_shop uuid, p_role text, p_email text default null)
returns uuid
language plpgsql
as $$
declare
  v_user uuid := pg_catalog.gen_random_uuid();
begin
  insert into auth.users (id, aud, role, email, raw_app_meta_data, created_at)
  values (
    v_user, 'authenticated', 'authenticated', coalesce(p_email, 'user-' || v_user || '@tests.test'),
    '{"provider": "email", "providers": ["email"]}', pg_catalog.now()
  );
  insert into public.shop_members (shop_id, user_id, role) values (p_shop, v_user, p_role);
  return v_user;
end;
$$;
