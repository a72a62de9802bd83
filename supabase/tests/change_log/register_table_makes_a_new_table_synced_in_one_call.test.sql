-- Threat closed: a new synced table added by hand that misses RLS, the change log, version
-- stamping or the delete guard. One call must give it all of them.
begin;
select plan(13);

set local client_min_messages = warning;
select (select version from shopsync.schema_state) as v0 \gset
create table public.loyalty_cards (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  name text not null
);
select lives_ok(
  $$select shopsync.register_table('public.loyalty_cards', 'last_write_wins')$$,
  'register_table takes the table in one call'
);

-- TEST: catalog: RLS, policies to authenticated, shop_id index, triggers, no anon grant
select ok((
  select relrowsecurity from pg_class
  where oid = 'public.loyalty_cards'::regclass
), 'RLS is enabled');
select is(
  (
    select array_agg(policyname::text order by policyname) from pg_policies
    where tablename = 'loyalty_cards' and roles = '{authenticated}'
  ),
  array['loyalty_cards_insert', 'loyalty_cards_select', 'loyalty_cards_update'],
  'select, insert and update policies for authenticated'
);
select ok(not has_table_privilege('anon', 'public.loyalty_cards', 'select'), 'anon cannot read it');
select ok((select version from shopsync.schema_state) > :v0, 'the schema version went up');

-- TEST: a push inserts into it, with version, change log and the schema listing it
call tests.authenticate_as('staff@shop-a.test');
select is(
  (
    select t ->> 'policy' from jsonb_array_elements(public.sync_schema() -> 'tables') as t
    where t ->> 'name' = 'loyalty_cards'
  ),
  'last_write_wins', 'sync_schema lists the new table with its policy'
);
call tests.register_device('d0000000-0000-4000-8000-0000000000d1');
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "loyalty_cards", "op": "insert",
   "row_id": "1c000000-0000-4000-8000-000000000001", "data": {"name": "Gold"}},
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "loyalty_cards", "op": "update",
   "row_id": "1c000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"name": "Platinum"}},
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "loyalty_cards", "op": "insert",
   "row_id": "1c000000-0000-4000-8000-000000000002", "data": {"colour": "red"}}
]') as p \gset
select is(
  jsonb_path_query_array(:'p'::jsonb, '$.results[*].status'), '["applied", "applied", "rejected"]'::jsonb,
  'insert and update apply; an unknown column is rejected'
);
select is(
  (
    select jsonb_agg(c ->> 'op') from jsonb_array_elements(public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0, 5000) -> 'changes') as c
    where c ->> 'table' = 'loyalty_cards'
  ),
  '["insert", "update"]'::jsonb, 'both writes are pulled from the change log'
);
select results_eq(
  $$select name, version, shop_id::text from public.loyalty_cards$$,
  $$values ('Platinum'::text, 2::bigint, 'aaaaaaaa-0000-4000-8000-000000000000'::text)$$,
  'the row carries version 2 and the caller''s shop'
);

-- TEST: other shops cannot see it; nobody can hard-delete it
call tests.authenticate_as('staff@shop-b.test');

select is((select count(*)::int from public.loyalty_cards), 0, 'shop B sees no shop A loyalty card');
select throws_ok(
  $$insert into public.loyalty_cards (id, shop_id, name) values ('1c000000-0000-4000-8000-000000000003', 'aaaaaaaa-0000-4000-8000-000000000000', 'x')$$,
  '42501', null, 'shop B cannot insert into shop A'
);
reset role;
select throws_ok('delete from public.loyalty_cards', 'SS002', null, 'hard delete is refused');
select throws_ok(
  $$update public.loyalty_cards set shop_id = 'bbbbbbbb-0000-4000-8000-000000000000'$$,
  'SS001', null, 'shop_id is immutable'
);

select * from finish();
rollback;
