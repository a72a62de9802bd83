-- Threat closed: an insert overwriting an existing row (id collision or a replayed insert with a
-- new event id), or revealing another shop's row.
begin;
select plan(8);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'bbbbbbbb-0000-4000-8000-000000000000/C-0001') as b_c1 \gset

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1');
call tests.register_device('d0000000-0000-4000-8000-0000000000d2', 'till 2');

select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "First"}}]') as p0 \gset
select public.sync_push('d0000000-0000-4000-8000-0000000000d2', jsonb_build_array(
  '{"event_id": "e0000000-0000-4000-8000-000000000002", "table": "customers", "op": "insert",
    "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Second"}}'::jsonb,
  '{"event_id": "e0000000-0000-4000-8000-000000000003", "table": "customers", "op": "insert",
    "row_id": "c0000000-0000-4000-8000-000000000002", "data": {"name": "Twin A"}}'::jsonb,
  '{"event_id": "e0000000-0000-4000-8000-000000000004", "table": "customers", "op": "insert",
    "row_id": "c0000000-0000-4000-8000-000000000002", "data": {"name": "Twin B"}}'::jsonb,
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000005', 'table', 'customers', 'op', 'insert',
    'row_id', :'b_c1', 'data', '{"name": "Shop B id"}'::jsonb
  )
)) as p1 \gset

-- TEST: an insert of an existing id is an id_exists conflict with the server row
select is((:'p1'::jsonb) #>> '{results,0,status}', 'conflict', 'inserting an existing id is a conflict');
select is((:'p1'::jsonb) #>> '{results,0,reason}', 'id_exists', '... with reason id_exists');
select is((:'p1'::jsonb) #>> '{results,0,server_row,name}', 'First', '... carrying the existing row');
-- TEST: two inserts of one id in a batch: the first applies, the second is id_exists
select is(
  jsonb_path_query_array(:'p1'::jsonb, '$.results[1 to 2].status'), '["applied", "conflict"]'::jsonb,
  'the second insert of the same id in one batch is a conflict'
);
-- TEST: an id taken in another shop is refused without revealing that shop's row
select isnt((:'p1'::jsonb) #>> '{results,3,status}', 'applied', 'an id of another shop cannot be inserted');
select is((:'p1'::jsonb) #> '{results,3,server_row}', 'null'::jsonb, '... and its row is not revealed');

reset role;
select results_eq(
  $$select id::text, name, version from public.customers where id in ('c0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000002') order by id$$,
  $$values ('c0000000-0000-4000-8000-000000000001'::text, 'First'::text, 1::bigint),
           ('c0000000-0000-4000-8000-000000000002', 'Twin A', 1)$$,
  'existing rows were not overwritten'
);
select results_eq(
  format('select shop_id::text, name from public.customers where id = %L', :'b_c1'),
  $$values ('bbbbbbbb-0000-4000-8000-000000000000'::text, 'Ada Lovelace'::text)$$,
  'shop B''s row is untouched'
);

select * from finish();
rollback;
