-- Threat closed: push reads and inserts a synced table's rows through static statements generated
-- per table (shopsync.build_push_readers: push_current_rows, push_taken_ids, push_run_validator,
-- push_insert_rows). A table registered later must get its branches from register_table, and a
-- table without one (the rebuild not run) must still push with the same answers: the current row
-- locked and classified, another shop's id refused like a free one, the table's validator run. A
-- table altered since its insert branch was built must not lose the new column's values.
begin;
select plan(15);

set local client_min_messages = warning;

-- A validator (called as push calls one: shop, role, round) that rejects red cards.
create function pg_temp.reject_red(p_shop uuid, p_role text, p_round int)
returns void
language plpgsql
as $$
begin
  update pg_temp.push_events as e
  set status = 'rejected', reason = 'invalid_value', message = 'no red cards'
  where e.rnd = p_round and e.status in ('go', 'stale') and e.data ->> 'colour' = 'red';
end;
$$;

create table public.loyalty_cards (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  colour text
);
select shopsync.register_table('public.loyalty_cards', 'last_write_wins', p_validator => 'pg_temp.reject_red');

-- The second table is registered while the rebuild trigger is off: it has no static branch.
alter table shopsync.synced_tables disable trigger push_readers_on_register;
create table public.gift_cards (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  colour text
);
select shopsync.register_table('public.gift_cards', 'last_write_wins', p_validator => 'pg_temp.reject_red');
alter table shopsync.synced_tables enable trigger push_readers_on_register;

-- TEST: register_table rebuilt the static reads for the first table, not for the second
select ok(
  pg_get_functiondef('shopsync.push_current_rows'::regproc) like '%public.loyalty_cards %'
  and pg_get_functiondef('shopsync.push_taken_ids'::regproc) like '%public.loyalty_cards %'
  and pg_get_functiondef('shopsync.push_run_validator'::regproc) like '%pg_temp.reject_red(%',
  'the static reads have a branch for the table registered later and its validator'
);
select ok(
  pg_get_functiondef('shopsync.push_current_rows'::regproc) not like '%gift_cards%'
  and pg_get_functiondef('shopsync.push_taken_ids'::regproc) not like '%gift_cards%',
  '... and none for the table registered without the rebuild'
);

-- Each table: shop A inserts a card, updates it twice from the same base (the second is stale) and
-- tries a red one; shop B then pushes an insert of A's id and an update of it.
create function pg_temp.push_as(p_email text, p_device uuid, p_events jsonb)
returns jsonb
language plpgsql
as $$
declare
  v_out jsonb;
begin
  call tests.authenticate_as(p_email);
  call tests.register_device(p_device);
  v_out := public.sync_push(p_device, p_events);
  call tests.clear_authentication();
  return v_out;
end;
$$;

select
  pg_temp.push_as('staff@shop-a.test', 'd0000000-0000-4000-8000-0000000000a1', jsonb_build_array(
    jsonb_build_object('event_id', gen_random_uuid(), 'table', t, 'op', 'insert', 'row_id', a_id,
      'data', jsonb_build_object('colour', 'blue')),
    jsonb_build_object('event_id', gen_random_uuid(), 'table', t, 'op', 'update', 'row_id', a_id,
      'base_version', 1, 'data', jsonb_build_object('colour', 'green')),
    jsonb_build_object('event_id', gen_random_uuid(), 'table', t, 'op', 'insert', 'row_id', gen_random_uuid(),
      'data', jsonb_build_object('colour', 'red'))
  )) as a1,
  pg_temp.push_as('staff@shop-a.test', 'd0000000-0000-4000-8000-0000000000a1', jsonb_build_array(
    jsonb_build_object('event_id', gen_random_uuid(), 'table', t, 'op', 'update', 'row_id', a_id,
      'base_version', 1, 'data', jsonb_build_object('colour', 'white'))
  )) as a2,
  pg_temp.push_as('staff@shop-b.test', 'd0000000-0000-4000-8000-0000000000b1', jsonb_build_array(
    jsonb_build_object('event_id', gen_random_uuid(), 'table', t, 'op', 'insert', 'row_id', a_id,
      'data', jsonb_build_object('colour', 'blue')),
    jsonb_build_object('event_id', gen_random_uuid(), 'table', t, 'op', 'update', 'row_id', a_id,
      'base_version', 2, 'data', jsonb_build_object('colour', 'black'))
  )) as b1,
  t
into temporary results
from (values
  ('loyalty_cards', 'c1000000-0000-4000-8000-000000000001'::uuid),
  ('gift_cards', 'c2000000-0000-4000-8000-000000000001'::uuid)
) as v (t, a_id);

-- TEST: both tables answer alike: applied, applied, the validator's rejection; a merge of the
-- stale update; another shop's id refused like a free one
select is(
  (select jsonb_path_query_array(a1, '$.results[*].status') from results where t = 'loyalty_cards'),
  '["applied", "applied", "rejected"]'::jsonb, 'static reads: insert and update apply, the validator rejects red'
);
select is(
  (select jsonb_path_query_array(a1, '$.results[*].status') from results where t = 'gift_cards'),
  '["applied", "applied", "rejected"]'::jsonb, 'without them: the same'
);
select is(
  (select a2 #>> '{results,0,status}' from results where t = 'loyalty_cards'),
  'merged', 'static reads: an update from an older base is classified stale and merged'
);
select is(
  (select a2 #>> '{results,0,status}' from results where t = 'gift_cards'),
  'merged', 'without them: the same'
);
select is(
  (select jsonb_path_query_array(b1, '$.results[*].reason') from results where t = 'loyalty_cards'),
  '["id_unavailable", "not_found"]'::jsonb, 'static reads: shop B cannot insert or update shop A''s id'
);
select is(
  (select jsonb_path_query_array(b1, '$.results[*].reason') from results where t = 'gift_cards'),
  '["id_unavailable", "not_found"]'::jsonb, 'without them: the same'
);
select results_eq(
  $$select colour, version from public.loyalty_cards where id = 'c1000000-0000-4000-8000-000000000001'$$,
  $$values ('white'::text, 3::bigint)$$,
  'static reads: shop A''s card holds its last write, version 3'
);
select results_eq(
  $$select colour, version from public.gift_cards order by id$$,
  $$values ('white'::text, 3::bigint)$$,
  'without them: the same'
);

-- TEST: a column added after the rebuild (no register_table call) is written: the insert's static
-- branch was built for the old columns and is not taken
select ok(
  pg_get_functiondef('shopsync.push_insert_rows'::regproc) like '%insert into public.loyalty_cards %',
  'the static inserts have a branch for the table registered later'
);
alter table public.loyalty_cards add column note text;
select is(
  pg_temp.push_as('staff@shop-a.test', 'd0000000-0000-4000-8000-0000000000a1', jsonb_build_array(
    jsonb_build_object('event_id', gen_random_uuid(), 'table', 'loyalty_cards', 'op', 'insert',
      'row_id', 'c1000000-0000-4000-8000-000000000002', 'data', jsonb_build_object('colour', 'blue', 'note', 'new'))
  )) #>> '{results,0,status}',
  'applied', 'an insert naming the new column applies'
);
select is(
  (select note from public.loyalty_cards where id = 'c1000000-0000-4000-8000-000000000002'),
  'new', '... and the new column holds its value'
);

-- TEST: a table that is no longer synced loses its branch at the next rebuild
delete from shopsync.synced_tables where table_name = 'loyalty_cards';
select ok(
  pg_get_functiondef('shopsync.push_current_rows'::regproc) not like '%loyalty_cards%',
  'unregistering the table rebuilt the reads without it'
);
select ok(
  pg_get_functiondef('shopsync.push_current_rows'::regproc) like '%public.orders %',
  '... keeping the other tables'' branches'
);

select * from finish();
rollback;
