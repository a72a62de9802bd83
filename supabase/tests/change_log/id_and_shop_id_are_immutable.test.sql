-- Threat closed: re-keying a row (breaking every device's copy) or moving it to another shop,
-- through any write path, even as the table owner.
begin;
select plan(8);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0001') as a_c1 \gset
select version as v from public.customers
where id = :'a_c1' \gset

-- TEST: even postgres (bypassing RLS) cannot change id or shop_id
select throws_ok(
  format($$update public.customers set shop_id = 'bbbbbbbb-0000-4000-8000-000000000000' where id = %L$$, :'a_c1'),
  'SS001', 'customers.id and customers.shop_id are immutable', 'shop_id cannot change, even for the table owner'
);
select throws_ok(
  format($$update public.customers set id = 'c0000000-0000-4000-8000-000000000099' where id = %L$$, :'a_c1'),
  'SS001', null, 'id cannot change, even for the table owner'
);

call tests.authenticate_as('owner@shop-a.test');

-- TEST: the owner cannot either, directly
select throws_ok(
  format($$update public.customers set id = 'c0000000-0000-4000-8000-000000000099' where id = %L$$, :'a_c1'),
  'SS001', null, 'the owner cannot change an id directly'
);
select throws_ok(
  $$update public.products set shop_id = 'bbbbbbbb-0000-4000-8000-000000000000' where sku = 'MUG-01'$$,
  'SS001', null, 'the owner cannot move a product to another shop directly'
);

-- TEST: nor through push: id and shop_id are read-only columns
call tests.register_device('d0000000-0000-4000-8000-0000000000a1');
select public.sync_push('d0000000-0000-4000-8000-0000000000a1', jsonb_build_array(
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000001', 'table', 'customers', 'op', 'update',
    'row_id', :'a_c1', 'base_version', :v, 'data', '{"shop_id": "bbbbbbbb-0000-4000-8000-000000000000"}'::jsonb
  ),
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000002', 'table', 'customers', 'op', 'update',
    'row_id', :'a_c1', 'base_version', :v, 'data', '{"id": "c0000000-0000-4000-8000-000000000099"}'::jsonb
  )
)) as r \gset
select is((:'r'::jsonb) #>> '{results,0,reason}', 'read_only_column', 'a push changing shop_id is rejected read_only_column');
select is((:'r'::jsonb) #>> '{results,1,reason}', 'read_only_column', 'a push changing id is rejected read_only_column');

reset role;
select results_eq(
  format('select id, shop_id, version from public.customers where id = %L', :'a_c1'),
  format($$values (%L::uuid, 'aaaaaaaa-0000-4000-8000-000000000000'::uuid, %s::bigint)$$, :'a_c1', :v),
  'the row keeps its id, shop and version'
);
select is(
  (
    select count(*)::int from public.customers
    where id = 'c0000000-0000-4000-8000-000000000099'
  ),
  0, 'no row was re-keyed'
);

select * from finish();
rollback;
