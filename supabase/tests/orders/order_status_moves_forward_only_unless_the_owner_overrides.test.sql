-- Threat closed: an order moving back (delivered -> pending, cancelled -> paid) by accident or by
-- a stale device; only an owner may force it, explicitly.
begin;
select plan(12);

call tests.authenticate_as('staff@shop-a.test');
-- TEST: direct table writes: forward moves pass, a backward move raises SS003
insert into public.orders (id, shop_id, total) values ('f0000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000000', 1);
select lives_ok(
  $$update public.orders set status = 'paid' where id = 'f0000000-0000-4000-8000-000000000001'$$,
  'pending -> paid directly'
);
select throws_ok(
  $$update public.orders set status = 'pending' where id = 'f0000000-0000-4000-8000-000000000001'$$,
  'SS003', 'order status cannot move from paid to pending', 'paid -> pending directly raises SS003'
);
reset role;
select throws_ok(
  $$update public.orders set status = 'pending' where id = 'f0000000-0000-4000-8000-000000000001'$$,
  'SS003', null, 'the rule holds for the table owner too'
);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1');
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "orders", "op": "insert",
   "row_id": "f0000000-0000-4000-8000-000000000002", "data": {"total": 1, "status": "pending"}},
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000002", "base_version": 1, "data": {"status": "paid"}},
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000002", "base_version": 2, "data": {"status": "shipping"}},
  {"event_id": "e0000000-0000-4000-8000-000000000004", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000002", "base_version": 3, "data": {"status": "paid"}},
  {"event_id": "e0000000-0000-4000-8000-000000000005", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000002", "base_version": 3, "data": {"status": "cancelled"}},
  {"event_id": "e0000000-0000-4000-8000-000000000006", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000002", "base_version": 3, "data": {"status": "pending"}, "override": true}
]') as p1 \gset

-- TEST: through push, forward moves apply and backward moves are rejected invalid_transition
select is(
  jsonb_path_query_array(:'p1'::jsonb, '$.results[*].status'),
  '["applied", "applied", "applied", "rejected", "rejected", "rejected"]'::jsonb,
  'pending -> paid -> shipping apply; shipping -> paid, shipping -> cancelled and a staff override are rejected'
);
select is(
  jsonb_path_query_array(:'p1'::jsonb, '$.results[3 to 5].reason'),
  '["invalid_transition", "invalid_transition", "invalid_transition"]'::jsonb,
  '... each with reason invalid_transition'
);

call tests.authenticate_as('owner@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d9', 'office');
select public.sync_push('d0000000-0000-4000-8000-0000000000d9', '[
  {"event_id": "e0000000-0000-4000-8000-000000000007", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000002", "base_version": 3, "data": {"status": "paid"}},
  {"event_id": "e0000000-0000-4000-8000-000000000008", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000002", "base_version": 3, "data": {"status": "paid"}, "override": true}
]') as p2 \gset

-- TEST: the owner needs the explicit override, and with it the backward move applies
select is((:'p2'::jsonb) #>> '{results,0,reason}', 'invalid_transition', 'an owner without override is rejected too');
select is((:'p2'::jsonb) #>> '{results,1,status}', 'applied', 'an owner with "override": true moves shipping -> paid');

reset role;
select results_eq(
  $$select status, version from public.orders where id = 'f0000000-0000-4000-8000-000000000002'$$,
  $$values ('paid'::text, 4::bigint)$$,
  'the order is paid, version 4'
);
select is(
  (
    select count(*)::int from shopsync.push_results
    where event_id in (
      'e0000000-0000-4000-8000-000000000004', 'e0000000-0000-4000-8000-000000000005',
      'e0000000-0000-4000-8000-000000000006', 'e0000000-0000-4000-8000-000000000007'
    )
  ),
  0, 'rejected transitions left no stored result'
);

-- TEST: cancelling is allowed from pending or paid only, and cancelled is final
select ok(shopsync.order_transition_ok('paid', 'cancelled'), 'paid -> cancelled is allowed');
select ok(not shopsync.order_transition_ok('delivered', 'cancelled'), 'delivered -> cancelled is not');
select ok(not shopsync.order_transition_ok('cancelled', 'paid'), 'cancelled -> paid is not');

select * from finish();
rollback;
