-- Threat closed: one tenant reading another tenant's data, directly, by guessing ids, through
-- sync_pull, through the private change log, or by presenting a token that names the other shop.
begin;
select plan(9);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0001') as a_c1 \gset

call tests.authenticate_as('staff@shop-b.test');

-- TEST: staff of B sees exactly B's two customers
select results_eq(
  'select distinct shop_id from public.customers',
  $$values ('bbbbbbbb-0000-4000-8000-000000000000'::uuid)$$,
  'staff of shop B sees customers, all of shop B'
);

-- TEST: filtering on shop A or on a known id of A returns nothing
select is_empty(
  $$select id from public.customers where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'$$,
  'filtering on shop A returns no customers'
);
select is(
  (
    select count(*)::int from public.customers
    where id = :'a_c1'
  ),
  0,
  'a known id of a shop A customer returns no row'
);

-- TEST: no other table leaks shop A either
select is(
  (
    select count(*)::int from public.products
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'
  )
  + (
    select count(*)::int from public.shop_settings
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'
  )
  + (
    select count(*)::int from public.shops
    where id = 'aaaaaaaa-0000-4000-8000-000000000000'
  )
  + (
    select count(*)::int from public.shop_members
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'
  )
  + (
    select count(*)::int from public.licenses
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'
  ),
  0,
  'products, settings, shop, members and licence of shop A are invisible to shop B'
);

-- TEST: the change log is not readable directly
select throws_ok(
  'select * from shopsync.change_log',
  '42501',
  null,
  'the private change log cannot be read directly'
);

-- TEST: sync_pull from a B device returns only B's changes
call tests.register_device('d0000000-0000-4000-8000-0000000000b1');
select is(
  (
    select count(*)::int from jsonb_array_elements(public.sync_pull('d0000000-0000-4000-8000-0000000000b1', 0, 5000) -> 'changes') as c
    where c -> 'row' ->> 'shop_id' <> 'bbbbbbbb-0000-4000-8000-000000000000'
  ),
  0,
  'sync_pull returns no change of another shop'
);
select ok(
  jsonb_array_length(public.sync_pull('d0000000-0000-4000-8000-0000000000b1', 0, 5000) -> 'changes') > 0,
  'sync_pull does return shop B changes (the check above is not vacuous)'
);

-- TEST: a token naming shop A for a user who is not a member of A sees nothing of A
call tests.authenticate_as('staff@shop-b.test', 'aaaaaaaa-0000-4000-8000-000000000000');
select is(
  (select count(*)::int from public.customers),
  0,
  'a claim for a shop the user does not belong to yields no rows'
);
select is(shopsync.current_shop_id(), null, 'current_shop_id() is null for a shop the user does not belong to');

select * from finish();
rollback;
