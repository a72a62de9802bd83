-- Threat closed: a device that queued several edits of one row offline (all on the same base)
-- conflicting with its own earlier edits.
begin;
select plan(7);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1');
call tests.register_device('d0000000-0000-4000-8000-0000000000d2', 'till 2');

select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "orders", "op": "insert",
   "row_id": "f0000000-0000-4000-8000-000000000001", "data": {"total": 1}}]') as p0 \gset

-- TEST: two queued updates of the same column on the same base, in one batch
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"total": 5}},
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"total": 7}}
]') as p1 \gset
select is(
  jsonb_path_query_array(:'p1'::jsonb, '$.results[*].status'), '["applied", "merged"]'::jsonb,
  'the second queued update of the same column merges over the device''s own first one'
);

-- TEST: and in a later batch, still on the old base
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000004", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"total": 9}}]') as p2 \gset
select is((:'p2'::jsonb) #>> '{results,0,status}', 'merged', 'a later batch on the same old base merges too');
select is((:'p2'::jsonb) #>> '{results,0,version}', '4', '... producing version 4');

reset role;
select results_eq(
  $$select total, version from public.orders where id = 'f0000000-0000-4000-8000-000000000001'$$,
  $$values (9.00::numeric(12, 2), 4::bigint)$$,
  'the order holds the device''s last edit'
);
call tests.authenticate_as('staff@shop-a.test');

-- TEST: control: once another device changed the column, the same stale edit is a conflict
select public.sync_push('d0000000-0000-4000-8000-0000000000d2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000005", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 4, "data": {"total": 11}}]') as p3 \gset
select is((:'p3'::jsonb) #>> '{results,0,status}', 'applied', 'device 2 edits the total');
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000006", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"total": 13}}]') as p4 \gset
select is((:'p4'::jsonb) #>> '{results,0,status}', 'conflict', 'device 1''s stale edit now conflicts with device 2''s');
select is((:'p4'::jsonb) #>> '{results,0,server_row,total}', '11.00', '... and sees device 2''s total');

select * from finish();
rollback;
