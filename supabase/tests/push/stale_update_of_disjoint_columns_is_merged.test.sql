-- Threat closed: needless conflicts when two devices edit different fields of the same row
-- offline; a stale base whose server-side changes do not overlap the event's columns merges.
begin;
select plan(8);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1');
call tests.register_device('d0000000-0000-4000-8000-0000000000d2', 'till 2');

select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Merge Me"}},
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "orders", "op": "insert",
   "row_id": "f0000000-0000-4000-8000-000000000001", "data": {"total": 1}}
]') as p0 \gset

-- device 2 changes email (customers, last_write_wins) and total (orders, manual)
select public.sync_push('d0000000-0000-4000-8000-0000000000d2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"email": "m@example.test"}},
  {"event_id": "e0000000-0000-4000-8000-000000000004", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"total": 10}}
]') as p1 \gset

-- device 1, still on version 1, changes other columns
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000005", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"phone": "555"}},
  {"event_id": "e0000000-0000-4000-8000-000000000006", "table": "orders", "op": "update",
   "row_id": "f0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"order_code": "O-1"}}
]') as p2 \gset

-- TEST: both stale updates merge and get the next version
select is((:'p1'::jsonb) #>> '{results,0,status}', 'applied', 'the first update applies on the current version');
select is((:'p2'::jsonb) #>> '{results,0,status}', 'merged', 'a stale customers update of a disjoint column merges');
select is((:'p2'::jsonb) #>> '{results,0,version}', '3', '... producing version 3');
select is((:'p2'::jsonb) #>> '{results,1,status}', 'merged', 'a stale orders update (manual policy) of a disjoint column merges too');

reset role;
-- TEST: both devices' changes are in the row
select results_eq(
  $$select email, phone, version from public.customers where id = 'c0000000-0000-4000-8000-000000000001'$$,
  $$values ('m@example.test'::text, '555'::text, 3::bigint)$$,
  'the customer holds both devices'' changes'
);
select results_eq(
  $$select total, order_code, version from public.orders where id = 'f0000000-0000-4000-8000-000000000001'$$,
  $$values (10.00::numeric(12, 2), 'O-1'::text, 3::bigint)$$,
  'the order holds both devices'' changes'
);
select is(
  (
    select changed_columns from shopsync.change_log
    where row_id = 'c0000000-0000-4000-8000-000000000001' and version = 3
  ),
  array['phone'], 'the merge logs only the merged column'
);
select is(
  (
    select merged from shopsync.push_stats
    where device_id = 'd0000000-0000-4000-8000-0000000000d1'
  ), 2,
  'metrics count two merges for device 1'
);

select * from finish();
rollback;
