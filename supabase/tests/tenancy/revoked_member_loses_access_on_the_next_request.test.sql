-- Threat closed: a dismissed employee keeps working with a still-valid access token until it
-- expires. The membership is checked on every request, not read from the token.
begin;
select plan(8);

call tests.authenticate_as_claims('{"sub": "a0000000-0000-4000-8000-000000000002", "role": "authenticated", "app_metadata": {"shop_id": "aaaaaaaa-0000-4000-8000-000000000000", "shop_role": "staff"}}');
call tests.register_device('d0000000-0000-4000-8000-0000000000a2');

-- TEST: before revocation the staff member sees the shop
select ok((select count(*) from public.customers) > 0, 'staff sees shop A customers before revocation');

reset role;
update public.shop_members set revoked_at = now()
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and user_id = 'a0000000-0000-4000-8000-000000000002';

-- same token, next request
call tests.authenticate_as_claims('{"sub": "a0000000-0000-4000-8000-000000000002", "role": "authenticated", "app_metadata": {"shop_id": "aaaaaaaa-0000-4000-8000-000000000000", "shop_role": "staff"}}');

-- TEST: the same token now sees nothing and every sync call is refused
select is(shopsync.current_shop_id(), null, 'current_shop_id() is null after revocation');
select is((select count(*)::int from public.customers), 0, 'a revoked member sees no customers');
select is((select count(*)::int from public.products), 0, 'a revoked member sees no products');
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000a2', '[{"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "x"}}]')$$,
  'PT403', 'you are not an active member of a shop', 'a revoked member cannot push'
);
select throws_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-0000000000a2', 0)$$,
  'PT403', null, 'a revoked member cannot pull'
);
select throws_ok(
  $$insert into public.customers (id, shop_id, name) values ('c0000000-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-000000000000', 'x')$$,
  '42501', null, 'a revoked member cannot insert directly'
);

reset role;
select is(
  (
    select count(*)::int from public.customers
    where id in ('c0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000002')
  ),
  0,
  'nothing the revoked member tried was written'
);

select * from finish();
rollback;
