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

-- Register a device in the acting user's shop through the RPC a till calls.
create procedure tests.register_device(p_device_id uuid, p_name text default 'till')
language plpgsql
as $$
begin
  perform public.sync_register_device(p_device_id, p_name);
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
