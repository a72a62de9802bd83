-- Memberships (hardening, issue 12 item 4): which shop a token carries is the user's own choice.
--
-- Before: the access-token hook took the user's oldest active membership, and an owner could insert
-- a membership for any user id with any created_at. An owner could so move another shop's user into
-- their shop, and the victim could not leave. Now:
--   * created_at and added_by of a membership are set by the server (a before trigger), whoever
--     writes the row and whatever they send;
--   * the token carries the shop the user chose (public.choose_shop) among their active memberships;
--     without a choice, the oldest active one, which an added membership never is;
--   * a member can leave a shop (public.leave_shop), except its last owner.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

alter table public.shop_members add column added_by uuid;
comment on column public.shop_members.added_by is
'Who added the member: auth.uid() of the inserting request, null when added by the platform. Server-set.';

create or replace function shopsync.shop_members_server_columns()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    new.created_at := now();
    new.added_by := auth.uid();
  else
    new.created_at := old.created_at;
    new.added_by := old.added_by;
  end if;
  return new;
end;
$$;
comment on function shopsync.shop_members_server_columns() is
'created_at and added_by of shop_members are the server''s: set on insert, kept on update.';

create trigger shop_members_server_columns before insert or update on public.shop_members
for each row execute function shopsync.shop_members_server_columns();

-- The user's choice ------------------------------------------------------------------------------
create table shopsync.chosen_shops (
  user_id uuid primary key references auth.users (id) on delete cascade,
  shop_id uuid not null references public.shops (id),
  chosen_at timestamptz not null default now()
);
create index chosen_shops_shop_id_idx on shopsync.chosen_shops (shop_id);
comment on table shopsync.chosen_shops is
'The shop each user chose (public.choose_shop); the access-token hook puts it into the token.';

-- The membership a new token carries: the chosen shop if that membership is active, else the oldest
-- active one (created_at is server-set, so a membership added later is never the oldest).
create or replace function shopsync.token_membership(p_user_id uuid)
returns table (shop_id uuid, role text)
language sql
stable
security definer
set search_path = ''
as $$
  select m.shop_id, m.role
  from public.shop_members as m
  left join shopsync.chosen_shops as c on m.user_id = c.user_id and m.shop_id = c.shop_id
  where m.user_id = p_user_id and m.revoked_at is null
  order by (c.user_id is null), m.created_at, m.shop_id
  limit 1
$$;

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
  select t.shop_id, t.role into v_shop, v_role
  from shopsync.token_membership((event ->> 'user_id')::uuid) as t;

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

create or replace function shopsync.choose_shop(p_shop_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_role text;
begin
  if auth.uid() is null then
    raise exception 'sign in first: this call needs a user access token'
      using errcode = 'PT401', detail = 'not_authenticated';
  end if;
  select m.role into v_role
  from public.shop_members as m
  where m.shop_id = p_shop_id and m.user_id = auth.uid() and m.revoked_at is null;
  if v_role is null then
    raise exception 'you are not an active member of shop %', p_shop_id
      using errcode = 'PT403', detail = 'not_a_member';
  end if;
  insert into shopsync.chosen_shops (user_id, shop_id) values (auth.uid(), p_shop_id)
  on conflict (user_id) do update set shop_id = excluded.shop_id, chosen_at = now();
  return jsonb_build_object('shop_id', p_shop_id, 'role', v_role);
end;
$$;

create or replace function public.choose_shop(p_shop_id uuid)
returns jsonb
language sql
volatile
set search_path = ''
as $$
  select shopsync.choose_shop(p_shop_id)
$$;
comment on function public.choose_shop(uuid) is
'Choose which of your active memberships your access tokens carry; refresh the session to get one.';

create or replace function shopsync.leave_shop(p_shop_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_role text;
begin
  if auth.uid() is null then
    raise exception 'sign in first: this call needs a user access token'
      using errcode = 'PT401', detail = 'not_authenticated';
  end if;
  select m.role into v_role
  from public.shop_members as m
  where m.shop_id = p_shop_id and m.user_id = auth.uid() and m.revoked_at is null
  for update;
  if v_role is null then
    raise exception 'you are not an active member of shop %', p_shop_id
      using errcode = 'PT403', detail = 'not_a_member';
  end if;
  if v_role = 'owner' and not exists (
    select 1 from public.shop_members as o
    where o.shop_id = p_shop_id and o.role = 'owner' and o.revoked_at is null and o.user_id <> auth.uid()
  ) then
    raise exception 'you are the last owner of shop %: add another owner first', p_shop_id
      using errcode = 'PT409', detail = 'last_owner';
  end if;
  update public.shop_members as m set revoked_at = now()
  where m.shop_id = p_shop_id and m.user_id = auth.uid();
  delete from shopsync.chosen_shops as c where c.user_id = auth.uid() and c.shop_id = p_shop_id;
  return jsonb_build_object('shop_id', p_shop_id, 'left_at', now());
end;
$$;

create or replace function public.leave_shop(p_shop_id uuid)
returns jsonb
language sql
volatile
set search_path = ''
as $$
  select shopsync.leave_shop(p_shop_id)
$$;
comment on function public.leave_shop(uuid) is
'Leave a shop you are a member of (revokes your own membership); its last owner cannot.';

-- Privileges of this capability's objects.
revoke execute on function shopsync.shop_members_server_columns() from public, anon, authenticated, service_role;
revoke execute on function shopsync.token_membership(uuid) from public, anon, authenticated, service_role;
revoke execute on function shopsync.choose_shop(uuid) from public, anon, service_role;
revoke execute on function shopsync.leave_shop(uuid) from public, anon, service_role;
revoke execute on function public.choose_shop(uuid) from public, anon;
revoke execute on function public.leave_shop(uuid) from public, anon;
grant usage on schema shopsync to supabase_auth_admin;
grant execute on function shopsync.token_membership(uuid) to supabase_auth_admin;
grant execute on function shopsync.choose_shop(uuid) to authenticated;
grant execute on function shopsync.leave_shop(uuid) to authenticated;
grant execute on function public.choose_shop(uuid) to authenticated;
grant execute on function public.leave_shop(uuid) to authenticated;
