-- Two hot helpers planned once per connection instead of once per call.
--
-- A SQL function with SET search_path is never inlined, and Postgres plans its query again at every
-- call (pg_stat_statements, docs/performance.md):
-- * shopsync.current_membership(): every RPC pays it (require_member -> current_membership), and so
--   does every RLS check (current_shop_id, current_shop_role): about 0.35 ms of a 1.6 ms pull at the
--   tip.
-- * shopsync.wrap64(): the checksum upkeep calls it once or twice per table and statement (about
--   0.08 ms a call), sync_checksums once per table.
-- As PL/pgSQL the plan is cached per connection: same query, same answers, same errors (a shop_id
-- claim that is not a uuid still fails with 22P02).

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function shopsync.current_membership()
returns table (shop_id uuid, role text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_user uuid := auth.uid();
  v_claim uuid := nullif(auth.jwt() -> 'app_metadata' ->> 'shop_id', '')::uuid;
begin
  return query
  select m.shop_id, m.role
  from public.shop_members as m
  where m.user_id = v_user
    and m.revoked_at is null
    and (
      m.shop_id = v_claim
      or (
        v_claim is null
        and not exists (
          select 1 from public.shop_members as o
          where o.user_id = m.user_id and o.revoked_at is null and o.shop_id <> m.shop_id
        )
      )
    );
end;
$$;

create or replace function shopsync.wrap64(p_value numeric)
returns bigint
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
declare
  v numeric := ((coalesce(p_value, 0) % 18446744073709551616) + 18446744073709551616) % 18446744073709551616;
begin
  return (case when v >= 9223372036854775808 then v - 18446744073709551616 else v end)::bigint;
end;
$$;

revoke execute on function shopsync.current_membership() from public, anon;
grant execute on function shopsync.current_membership() to authenticated, service_role;
