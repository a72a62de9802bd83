-- Threat closed: one tenant writing another tenant's rows, by direct table writes, by moving a row
-- across shops, or through sync_push with a guessed row id or a reference to another shop's row.
begin;
select plan(11);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0001') as a_c1 \gset
select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'bbbbbbbb-0000-4000-8000-000000000000/C-0001') as b_c1 \gset
select
  name as a_name,
  version as a_version,
  (
    select count(*) from shopsync.change_log as cl
    where cl.row_id = :'a_c1'
  ) as a_log_n
from public.customers
where id = :'a_c1' \gset

call tests.authenticate_as('staff@shop-b.test');

-- TEST: a direct update of an A row from B affects nothing
update public.customers set name = 'hijacked'
where id = :'a_c1';
-- TEST: a direct insert into shop A is refused by RLS
select throws_ok(
  $$insert into public.customers (id, shop_id, name) values ('c0000000-0000-4000-8000-0000000000b9', 'aaaaaaaa-0000-4000-8000-000000000000', 'intruder')$$,
  '42501',
  null,
  'inserting a row into shop A from shop B is refused'
);
-- TEST: moving an own row into shop A is refused
select throws_ok(
  format($$update public.customers set shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' where id = %L$$, :'b_c1'),
  'SS001',
  null,
  'moving a shop B row into shop A is refused'
);

-- TEST: push updates and deletes of A rows are rejected as not_found, without leaking the row
call tests.register_device('d0000000-0000-4000-8000-0000000000b1');
select public.sync_push('d0000000-0000-4000-8000-0000000000b1', jsonb_build_array(
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000001', 'table', 'customers', 'op', 'update',
    'row_id', :'a_c1', 'base_version', 1, 'data', jsonb_build_object('name', 'hijacked'), 'client_ts', now()
  ),
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000002', 'table', 'customers', 'op', 'delete',
    'row_id', :'a_c1', 'base_version', 1, 'client_ts', now()
  ),
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000003', 'table', 'orders', 'op', 'insert',
    'row_id', 'f0000000-0000-4000-8000-0000000000b1', 'data', jsonb_build_object('customer_id', :'a_c1', 'total', 5), 'client_ts', now()
  )
)) as r \gset
select is((:'r'::jsonb) #>> '{results,0,status}', 'rejected', 'push update of an A row from B is rejected');
select is((:'r'::jsonb) #>> '{results,0,reason}', 'not_found', '... with reason not_found');
select is((:'r'::jsonb) #> '{results,0,server_row}', 'null'::jsonb, '... and no server_row');
select is((:'r'::jsonb) #>> '{results,1,reason}', 'not_found', 'push delete of an A row from B is rejected not_found');
-- TEST: a B order cannot reference an A customer
select is((:'r'::jsonb) #>> '{results,2,status}', 'rejected', 'a B order referencing an A customer is rejected');
select is((:'r'::jsonb) #>> '{results,2,reason}', 'invalid_reference', '... with reason invalid_reference');

reset role;
select results_eq(
  format('select name, version, deleted_at from public.customers where id = %L', :'a_c1'),
  format('values (%L::text, %s::bigint, null::timestamptz)', :'a_name', :a_version),
  'the shop A customer is untouched: name, version and deleted_at as before'
);
select is(
  (
    select count(*)::int from shopsync.change_log
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and row_id = :'a_c1'
  ),
  :a_log_n::int,
  'shop A change log got no entry for that customer'
);
select is(
  (
    select count(*)::int from public.orders
    where id = 'f0000000-0000-4000-8000-0000000000b1'
  ),
  0,
  'the rejected order was not written'
);

select * from finish();
rollback;
