-- Threat closed: a retried batch (lost response, flaky network) applied twice.
begin;
select plan(10);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/MUG-01') as mug \gset
select version as v from public.products
where id = :'mug' \gset

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000a2');
call tests.register_device('d0000000-0000-4000-8000-0000000000a4', 'second till');

select jsonb_build_array(
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000001', 'table', 'customers', 'op', 'insert',
    'row_id', 'c0000000-0000-4000-8000-000000000001', 'data', '{"name": "Once"}'::jsonb
  ),
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000002', 'table', 'products', 'op', 'update',
    'row_id', :'mug', 'base_version', :v, 'data', '{"price": 13.5}'::jsonb
  )
) as batch \gset

select public.sync_push('d0000000-0000-4000-8000-0000000000a2', :'batch') as first \gset
reset role;
select count(*) as log_n from shopsync.change_log \gset
select count(*) as results_n from shopsync.push_results \gset
set local role authenticated;

-- TEST: the replay answers duplicate with the stored outcome
select public.sync_push('d0000000-0000-4000-8000-0000000000a2', :'batch') as replay \gset
select is((:'first'::jsonb) #>> '{results,1,status}', 'applied', 'the first push applies');
select is(
  jsonb_path_query_array(:'replay'::jsonb, '$.results[*].status'),
  '["duplicate", "duplicate"]'::jsonb,
  'the replay answers duplicate for both events'
);
select is(
  jsonb_path_query_array(:'replay'::jsonb, '$.results[*].original_status'),
  '["applied", "applied"]'::jsonb,
  '... with the original status'
);
select is(
  (:'replay'::jsonb) #>> '{results,1,version}', (:'first'::jsonb) #>> '{results,1,version}',
  '... and the original version'
);

-- TEST: the same event_id from another device of the shop is a duplicate too
select is(
  public.sync_push('d0000000-0000-4000-8000-0000000000a4', :'batch') #>> '{results,0,status}',
  'duplicate',
  'a replay from another device of the shop is a duplicate'
);

reset role;
-- TEST: nothing changed
select is((select count(*) from shopsync.change_log), :log_n::bigint, 'the replays wrote no change-log entry');
select is((select count(*) from shopsync.push_results), :results_n::bigint, 'the replays stored no new result');
select results_eq(
  format('select price, version from public.products where id = %L', :'mug'),
  format($$values (13.50::numeric(12, 2), %s::bigint)$$, :v + 1),
  'the product was updated exactly once'
);
select is(
  (
    select count(*)::int from public.customers
    where id = 'c0000000-0000-4000-8000-000000000001'
  ), 1,
  'the customer exists once'
);

-- TEST: event ids are per shop: shop B may use the same event id
call tests.authenticate_as('staff@shop-b.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000b1');
select is(
  public.sync_push(
    'd0000000-0000-4000-8000-0000000000b1',
    '[{"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
       "row_id": "c0000000-0000-4000-8000-0000000000b1", "data": {"name": "B"}}]'
  ) #>> '{results,0,status}',
  'applied',
  'the same event id in another shop is a new event'
);

select * from finish();
rollback;
