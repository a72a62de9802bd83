-- Threat closed: rows vanishing without a tombstone (devices would never learn of the delete).
-- Deletes are soft; only the retention job purges.
begin;
select plan(10);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0002') as a_c2 \gset
select version as v from public.customers where id = :'a_c2' \gset
select count(*) as a_n from public.customers where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset

-- TEST: the table owner cannot hard-delete or truncate a synced table
select throws_ok(
  'delete from public.customers', 'SS002', null, 'DELETE on customers is refused, even for the table owner'
);
select throws_ok(
  'delete from public.shop_settings', 'SS002', null, 'DELETE on shop_settings is refused'
);
select throws_ok('truncate public.order_items', 'SS002', null, 'TRUNCATE of order_items is refused');
select throws_ok('truncate public.shop_settings', 'SS002', null, 'TRUNCATE of shop_settings is refused');

-- TEST: only the retention job can purge: its functions are not callable by API roles
select ok(
  not has_function_privilege('authenticated', 'shopsync.run_retention(interval, interval)', 'execute')
  and not has_function_privilege('anon', 'shopsync.run_retention(interval, interval)', 'execute'),
  'API roles cannot run retention'
);

call tests.authenticate_as('owner@shop-a.test');

-- TEST: API users cannot delete, even by setting the purge flag themselves
set local shopsync.purging = 'on';
select throws_ok(
  format('delete from public.customers where id = %L', :'a_c2'), '42501', null,
  'the owner cannot DELETE a customer, even with shopsync.purging on'
);
set local shopsync.purging = 'off';

-- TEST: a push delete is a soft delete
call tests.register_device('d0000000-0000-4000-8000-0000000000a1');
select public.sync_push('d0000000-0000-4000-8000-0000000000a1', jsonb_build_array(
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000001', 'table', 'customers', 'op', 'delete',
    'row_id', :'a_c2', 'base_version', :v)
)) as r \gset
select is((:'r'::jsonb) #>> '{results,0,status}', 'applied', 'a push delete applies');

reset role;
select isnt(
  (select deleted_at from public.customers where id = :'a_c2'), null,
  'the deleted customer is still there, with deleted_at set'
);
select results_eq(
  format($$select op, version from shopsync.change_log where row_id = %L order by seq desc limit 1$$, :'a_c2'),
  format($$values ('delete'::text, %s::bigint)$$, :v + 1),
  'the delete is in the change log as op delete'
);
select is(
  (select count(*)::int from public.customers where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'),
  :a_n::int, 'no customer row was removed'
);

select * from finish();
rollback;
