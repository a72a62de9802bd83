-- Threat closed: push runs a small batch (at most 64 events) with plan_cache_mode =
-- force_generic_plan, so its static statements are planned once per backend instead of on every
-- call; a bigger batch (analyzed at staging) keeps auto, so its plans follow its size. The mode must
-- not leak: the caller's transaction goes on with its own setting after the push. Both write the
-- table's rows through its static insert (push_insert_rows), not the dynamic statement (a failing
-- static path would still answer right, through push_write's per-event fallback, only slower).
begin;
select plan(7);

set local client_min_messages = warning;

-- A validator that notes the mode each push runs under.
create temporary table modes (n int, mode text);
create function pg_temp.note_mode(p_shop uuid, p_role text, p_round int)
returns void
language plpgsql
as $$
begin
  insert into pg_temp.modes (n, mode)
  select count(*) + 1, current_setting('plan_cache_mode') from pg_temp.modes;
end;
$$;
grant select, insert on pg_temp.modes to public;

create table public.punch_cards (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  punches int
);
select shopsync.register_table('public.punch_cards', 'last_write_wins', p_validator => 'pg_temp.note_mode');

-- A push of n card inserts from the till.
create function pg_temp.push_cards(n int)
returns jsonb
language sql
as $$
  select public.sync_push('d0000000-0000-4000-8000-0000000000a1', (
    select jsonb_agg(jsonb_build_object('event_id', gen_random_uuid(), 'table', 'punch_cards', 'op', 'insert',
      'row_id', gen_random_uuid(), 'data', jsonb_build_object('punches', g)))
    from generate_series(1, n) as g
  ))
$$;

-- Calls of the write path's functions in this transaction, from here on.
set local track_functions = 'all';
create function pg_temp.calls(p_fn regproc)
returns bigint
language sql
as $$
  select coalesce((select f.calls from pg_catalog.pg_stat_xact_user_functions as f where f.funcid = p_fn), 0)
$$;

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000a1');
set local plan_cache_mode = force_custom_plan;

select pg_temp.push_cards(10) as small \gset

-- TEST: a small push runs generic plans and hands the caller's mode back
select is((select mode from pg_temp.modes where n = 1), 'force_generic_plan', 'a 10-event push plans generically');
select is(current_setting('plan_cache_mode'), 'force_custom_plan', '... and the caller''s mode is back after it');

select pg_temp.push_cards(65) as big \gset

-- TEST: a batch over 64 events keeps auto; both pushes applied every event
select is((select mode from pg_temp.modes where n = 2), 'auto', 'a 65-event push keeps auto');
select is(current_setting('plan_cache_mode'), 'force_custom_plan', '... and the caller''s mode is back after it');
reset role;
select is((select count(*)::int from public.punch_cards), 75, 'both pushes applied all their events');

-- TEST: each push inserted through the static branch, never building or reading the dynamic statement
select is(pg_temp.calls('shopsync.push_insert_rows'), 2::bigint, 'each push took the static insert once');
select is(pg_temp.calls('shopsync.push_write_statements'), 0::bigint, '... and no dynamic write statement');

select * from finish();
rollback;
