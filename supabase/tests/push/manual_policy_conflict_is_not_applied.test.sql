-- Threat closed: concurrent edits of an order (money) resolved silently by the server; under the
-- manual policy an overlapping stale edit is not applied and goes back to the user with the
-- server's row, whatever the client timestamps say.
begin;
select plan(9);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1');
call tests.register_device('d0000000-0000-4000-8000-0000000000d2', 'till 2');

select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "orders", "op": "insert",
   "row_id": "f0000000-0000-4000-8000-000000000001", "data": {"total": 1}},
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "order_items", "op": "insert",
   "row_id": "10000000-0000-4000-8000-000000000001",
   "data": {"order_id": "f0000000-0000-4000-8000-000000000001", "quantity": 1, "unit_price": 1}}
]') as p0 \gset
select public.sync_push('d0000000-0000-4000-8000-0000000000d2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"total": 10},
   "client_ts": "2020-01-01T00:00:00Z"},
  {"event_id": "e0000000-0000-4000-8000-000000000004", "table": "order_items", "op": "update",
   "row_id": "10000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"quantity": 2}}
]') as p1 \gset
-- device 1 edits the same columns later (by its clock) from the stale base
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000005", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"total": 20, "order_code": "O-9"},
   "client_ts": "2021-01-01T00:00:00Z"},
  {"event_id": "e0000000-0000-4000-8000-000000000006", "table": "order_items", "op": "update",
   "row_id": "10000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"quantity": 3}},
  {"event_id": "e0000000-0000-4000-8000-000000000007", "table": "orders", "op": "delete",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 1}
]') as p2 \gset

-- TEST: overlapping stale edits of orders and order items are conflicts with the server row
select is((:'p1'::jsonb) #>> '{results,0,status}', 'applied', 'device 2''s edit applies');
select is(
  jsonb_path_query_array(:'p2'::jsonb, '$.results[*].status'), '["conflict", "conflict", "conflict"]'::jsonb,
  'device 1''s overlapping stale edits and delete are conflicts'
);
select is((:'p2'::jsonb) #>> '{results,0,reason}', 'concurrent_update', '... with reason concurrent_update');
select is((:'p2'::jsonb) #>> '{results,0,server_row,total}', '10.00', 'the order conflict carries the server total');
select is((:'p2'::jsonb) #>> '{results,1,server_row,quantity}', '2.000', 'the item conflict carries the server quantity');

reset role;
-- TEST: none of it was applied, not even the non-overlapping column of the same event
select results_eq(
  $$select total, order_code, version, deleted_at from public.orders where id = 'f0000000-0000-4000-8000-000000000001'$$,
  $$values (10.00::numeric(12, 2), null::text, 2::bigint, null::timestamptz)$$,
  'the order keeps the server''s values; the whole event waits for the user'
);
select results_eq(
  $$select quantity, version from public.order_items where id = '10000000-0000-4000-8000-000000000001'$$,
  $$values (2.000::numeric(12, 3), 2::bigint)$$,
  'the item keeps the server''s quantity'
);
select is(
  (
    select count(*)::int from shopsync.change_log
    where row_id in ('f0000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001')
  ),
  4, 'the conflicts wrote no change-log entry'
);
select is(
  (
    select result ->> 'status' from shopsync.push_results
    where event_id = 'e0000000-0000-4000-8000-000000000005'
  ),
  'conflict', 'the conflict outcome is stored, so a replay answers the same'
);

select * from finish();
rollback;
