-- Threat closed: one bad event blocking a device's whole queue, or a bad event leaving a partial
-- effect (a row, a change-log entry, a stored result) behind.
begin;
select plan(21);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0001') as a_c1 \gset
select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'bbbbbbbb-0000-4000-8000-000000000000/C-0001') as b_c1 \gset
select version as a_v from public.customers
where id = :'a_c1' \gset
select
  name as b_name,
  version as b_v
from public.customers
where id = :'b_c1' \gset
select last_seq as s0 from shopsync.shop_cursor
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000a2');

select public.sync_push('d0000000-0000-4000-8000-0000000000a2', jsonb_build_array(
  -- 0: good
  '{"event_id": "e0000000-0000-4000-8000-000000000000", "table": "customers", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000000", "data": {"name": "Good one"}}'::jsonb,
  -- 1: unknown table
  '{"event_id": "e0000000-0000-4000-8000-000000000001", "table": "suppliers", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "x"}}'::jsonb,
  -- 2: unknown column
  '{"event_id": "e0000000-0000-4000-8000-000000000002", "table": "customers", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000002", "data": {"name": "x", "shoe_size": 44}}'::jsonb,
  -- 3: wrong type
  '{"event_id": "e0000000-0000-4000-8000-000000000003", "table": "products", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000003", "data": {"sku": "X-3", "name": "x", "price": "cheap"}}'::jsonb,
  -- 4: null in a not-null column
  '{"event_id": "e0000000-0000-4000-8000-000000000004", "table": "customers", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000004", "data": {"name": null}}'::jsonb,
  -- 5: required column missing
  '{"event_id": "e0000000-0000-4000-8000-000000000005", "table": "customers", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000005", "data": {"email": "x@example.test"}}'::jsonb,
  -- 6: check violation (only the table knows)
  '{"event_id": "e0000000-0000-4000-8000-000000000006", "table": "products", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000006", "data": {"sku": "X-6", "name": "x", "price": -1}}'::jsonb,
  -- 7: another shop's row
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000007', 'table', 'customers', 'op', 'update', 'row_id', :'b_c1', 'base_version', :b_v, 'data', '{"name": "x"}'::jsonb),
  -- 8: read-only column
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000008', 'table', 'customers', 'op', 'update', 'row_id', :'a_c1', 'base_version', :a_v, 'data', '{"version": 99}'::jsonb),
  -- 9: good, in the same table group as the check violation
  '{"event_id": "e0000000-0000-4000-8000-000000000009", "table": "products", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000009", "data": {"sku": "X-9", "name": "Good product", "price": 2.5}}'::jsonb,
  -- 10: dangling reference
  '{"event_id": "e0000000-0000-4000-8000-000000000010", "table": "order_items", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000010", "data": {"order_id": "f0000000-0000-4000-8000-000000000404", "quantity": 1, "unit_price": 1}}'::jsonb,
  -- 11: good update of an existing row
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000011', 'table', 'customers', 'op', 'update', 'row_id', :'a_c1', 'base_version', :a_v, 'data', '{"notes": "still applied"}'::jsonb),
  -- 12: not an object
  '"junk"'::jsonb,
  -- 13: unknown op
  '{"event_id": "e0000000-0000-4000-8000-000000000013", "table": "customers", "op": "upsert", "row_id": "c0000000-0000-4000-8000-000000000013", "data": {"name": "x"}}'::jsonb,
  -- 14: update without base_version
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000014', 'table', 'customers', 'op', 'update', 'row_id', :'a_c1', 'data', '{"notes": "no base"}'::jsonb)
)) as r \gset

-- TEST: each bad event is rejected with its machine-readable reason
select is(
  jsonb_path_query_array(:'r'::jsonb, '$.results[*].status'),
  '["applied", "rejected", "rejected", "rejected", "rejected", "rejected", "rejected", "rejected", "rejected", "applied", "rejected", "applied", "rejected", "rejected", "rejected"]'::jsonb,
  'good events apply, bad ones are rejected, in event order'
);
select is((:'r'::jsonb) #>> '{results,1,reason}', 'unknown_table', 'unknown table');
select is((:'r'::jsonb) #>> '{results,2,reason}', 'unknown_column', 'unknown column');
select is((:'r'::jsonb) #>> '{results,3,reason}', 'invalid_value', 'wrong type');
select is((:'r'::jsonb) #>> '{results,4,reason}', 'null_value', 'null in a not-null column');
select is((:'r'::jsonb) #>> '{results,5,reason}', 'missing_column', 'required column missing');
select is((:'r'::jsonb) #>> '{results,6,reason}', 'check_violation', 'check constraint broken');
select is((:'r'::jsonb) #>> '{results,7,reason}', 'not_found', 'another shop''s row');
select is((:'r'::jsonb) #>> '{results,8,reason}', 'read_only_column', 'read-only column');
select is((:'r'::jsonb) #>> '{results,10,reason}', 'invalid_reference', 'dangling reference');
select is((:'r'::jsonb) #>> '{results,12,reason}', 'invalid_event', 'an event that is not an object');
select is((:'r'::jsonb) #>> '{results,13,reason}', 'invalid_op', 'an unknown op');
select is((:'r'::jsonb) #>> '{results,14,reason}', 'missing_base_version', 'an update without base_version');
select ok(
  (
    select bool_and(coalesce(x ->> 'message', '') <> '') from jsonb_array_elements((:'r'::jsonb) -> 'results') as x
    where x ->> 'status' = 'rejected' and x ->> 'reason' not in ('invalid_event', 'invalid_op', 'missing_base_version')
  ),
  'every rejection past the shape checks explains itself in message'
);

reset role;
-- TEST: rejected events leave no row, no change-log entry, no stored result
select is(
  (
    select count(*)::int from (
      select id from public.customers
      union all
      select id from public.products
      union all
      select id from public.order_items
    ) as t
    where
      t.id::text like 'c0000000-0000-4000-8000-0000000000%'
      and t.id not in ('c0000000-0000-4000-8000-000000000000', 'c0000000-0000-4000-8000-000000000009')
  ),
  0,
  'no rejected insert left a row'
);
select results_eq(
  format('select name, version from public.customers where id = %L', :'b_c1'),
  format('values (%L::text, %s::bigint)', :'b_name', :b_v),
  'shop B''s row is untouched'
);
select is(
  (
    select count(*)::int from shopsync.change_log
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and seq > :s0
  ),
  3,
  'only the three good events reached the change log'
);
select is(
  (
    select count(*)::int from shopsync.push_results
    where device_id = 'd0000000-0000-4000-8000-0000000000a2'
  ),
  3,
  'only the three good events have a stored result'
);

-- TEST: the good events applied, including the one sharing a table with a check violation
select is((
  select name from public.products
  where id = 'c0000000-0000-4000-8000-000000000009'
), 'Good product', 'the good product exists');
select results_eq(
  format('select notes, version from public.customers where id = %L', :'a_c1'),
  format($$values ('still applied'::text, %s::bigint)$$, :a_v + 1),
  'the good update applied once (the rejected read-only update of the same row did not)'
);
select is(
  (
    select rejected from shopsync.push_stats
    where device_id = 'd0000000-0000-4000-8000-0000000000a2'
  ), 12,
  'metrics count twelve rejections'
);

select * from finish();
rollback;
