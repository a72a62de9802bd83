-- Tenancy: shops, members with roles, licences; the private schema that holds the helpers RLS
-- policies call, and the server's settings; the access-token hook; the audit log.
--
-- Layering: `shopsync` is a private (non-exposed) schema for helpers, logs and the sync engine;
-- `public` holds the tables clients see and a small RPC surface. Who may use what is granted in
-- one place, the last migration (privileges).

create schema if not exists shopsync;
comment on schema shopsync is 'shopsync internals: helpers, change log, sync engine. Not exposed by the API.';

-- Server settings, one row per key; each capability inserts its own keys.
create table shopsync.config (
  key text primary key,
  value jsonb not null,
  description text
);

create or replace function shopsync.config_value(p_key text)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select c.value from shopsync.config as c where c.key = p_key
$$;

create table public.shops (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  created_at timestamptz not null default now()
);
comment on table public.shops is 'A tenant. Every other row carries its shop_id.';

create table public.shop_members (
  shop_id uuid not null references public.shops (id),
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('owner', 'staff', 'viewer')),
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  primary key (shop_id, user_id)
);
create index shop_members_user_id_idx on public.shop_members (user_id);
comment on table public.shop_members is
'Who belongs to a shop and as what. Revoking (revoked_at) takes effect on the next request.';

create table public.licenses (
  shop_id uuid primary key references public.shops (id),
  plan text not null default 'standard',
  max_devices integer not null default 3 check (max_devices >= 0),
  valid_until timestamptz not null
);
comment on table public.licenses is
'A shop''s licence: how many devices may register, and until when pushes are accepted.';

-- The caller -----------------------------------------------------------------------------------
-- The shop comes from the JWT claim app_metadata.shop_id (put there by the access-token hook) and
-- the membership is checked on every call, so a revoked member loses access on the next request,
-- not when the token expires. Without the claim, a user with exactly one active membership gets
-- that shop.
create or replace function shopsync.current_membership()
returns table (shop_id uuid, role text)
language sql
stable
security definer
set search_path = ''
as $$
  select m.shop_id, m.role
  from public.shop_members as m
  where m.user_id = auth.uid()
    and m.revoked_at is null
    and (
      m.shop_id = nullif(auth.jwt() -> 'app_metadata' ->> 'shop_id', '')::uuid
      or (
        nullif(auth.jwt() -> 'app_metadata' ->> 'shop_id', '') is null
        and not exists (
          select 1 from public.shop_members as o
          where o.user_id = m.user_id and o.revoked_at is null and o.shop_id <> m.shop_id
        )
      )
    )
$$;

create or replace function shopsync.current_shop_id()
returns uuid
language sql
stable
security definer
set search_path = ''
as $$
  select cm.shop_id from shopsync.current_membership() as cm
$$;

create or replace function shopsync.current_shop_role()
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select cm.role from shopsync.current_membership() as cm
$$;

-- The caller as an active member, or a whole-call error the RPCs share: PT401 without a user,
-- PT403 not_a_member without an active membership.
create or replace function shopsync.require_member()
returns table (shop_id uuid, role text)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_shop uuid;
  v_role text;
begin
  if auth.uid() is null then
    raise exception 'sign in first: this call needs a user access token'
      using errcode = 'PT401', detail = 'not_authenticated';
  end if;
  select cm.shop_id, cm.role into v_shop, v_role from shopsync.current_membership() as cm;
  if v_shop is null then
    raise exception 'you are not an active member of a shop' using errcode = 'PT403', detail = 'not_a_member';
  end if;
  return query select v_shop, v_role;
end;
$$;

comment on function shopsync.current_shop_id() is
'The caller''s shop (JWT claim app_metadata.shop_id) if the membership is still active; else null.';
comment on function shopsync.current_shop_role() is
'owner | staff | viewer for the caller''s active membership; else null.';

-- Row-level security -----------------------------------------------------------------------------
alter table public.shops enable row level security;
alter table public.shop_members enable row level security;
alter table public.licenses enable row level security;

create policy shops_select on public.shops for select to authenticated
using (id = (select shopsync.current_shop_id()));
create policy shops_update on public.shops for update to authenticated
using (id = (select shopsync.current_shop_id()) and (select shopsync.current_shop_role()) = 'owner')
with check (id = (select shopsync.current_shop_id()));

create policy shop_members_select on public.shop_members for select to authenticated
using (shop_id = (select shopsync.current_shop_id()));
create policy shop_members_insert on public.shop_members for insert to authenticated
with check (shop_id = (select shopsync.current_shop_id()) and (select shopsync.current_shop_role()) = 'owner');
create policy shop_members_update on public.shop_members for update to authenticated
using (shop_id = (select shopsync.current_shop_id()) and (select shopsync.current_shop_role()) = 'owner')
with check (shop_id = (select shopsync.current_shop_id()));

create policy licenses_select on public.licenses for select to authenticated
using (shop_id = (select shopsync.current_shop_id()));

-- Access-token hook -------------------------------------------------------------------------------
-- Supabase Auth calls this before issuing each access token (see config.toml). It adds the
-- caller's shop and role to app_metadata. Members of several shops get the oldest active one.
create or replace function public.custom_access_token_hook(event jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  v_shop uuid;
  v_role text;
begin
  select m.shop_id, m.role into v_shop, v_role
  from public.shop_members as m
  where m.user_id = (event ->> 'user_id')::uuid and m.revoked_at is null
  order by m.created_at, m.shop_id
  limit 1;

  if v_shop is not null then
    v_claims := jsonb_set(
      v_claims, '{app_metadata}',
      coalesce(v_claims -> 'app_metadata', '{}'::jsonb)
      || jsonb_build_object('shop_id', v_shop, 'shop_role', v_role)
    );
  end if;
  return jsonb_build_object('claims', v_claims);
end;
$$;

-- Supabase Auth reads memberships as supabase_auth_admin (grants: privileges migration).
create policy shop_members_read_by_auth_admin on public.shop_members for select to supabase_auth_admin
using (true);

-- Audit log ---------------------------------------------------------------------------------------
create table shopsync.audit_log (
  id bigint generated always as identity primary key,
  shop_id uuid not null,
  actor uuid,
  action text not null,
  table_name text,
  row_id uuid,
  details jsonb,
  at timestamptz not null default now()
);
create index audit_log_shop_id_at_idx on shopsync.audit_log (shop_id, at);
comment on table shopsync.audit_log is 'Deletes, restores, member and licence changes.';

create or replace function shopsync.audit_membership()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into shopsync.audit_log (shop_id, actor, action, table_name, row_id, details)
  values (
    (coalesce(to_jsonb(new), to_jsonb(old)) ->> 'shop_id')::uuid,
    auth.uid(),
    lower(tg_op),
    tg_table_name,
    (coalesce(to_jsonb(new), to_jsonb(old)) ->> 'user_id')::uuid,
    jsonb_build_object('old', to_jsonb(old), 'new', to_jsonb(new))
  );
  return null;
end;
$$;

create trigger shop_members_audit after insert or update or delete on public.shop_members
for each row execute function shopsync.audit_membership();
create trigger licenses_audit after insert or update or delete on public.licenses
for each row execute function shopsync.audit_membership();
