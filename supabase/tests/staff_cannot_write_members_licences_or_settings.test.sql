-- Threat closed: staff promoting themselves, extending the licence, adding devices seats, or
-- changing shop settings; only owners manage the shop.
begin;
select plan(11);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/currency') as a_cur \gset

set local role authenticated;
set local "request.jwt.claims" = '{"sub": "a0000000-0000-4000-8000-000000000002", "role": "authenticated", "app_metadata": {"shop_id": "aaaaaaaa-0000-4000-8000-000000000000"}}';
select public.sync_register_device('d0000000-0000-4000-8000-0000000000a2', 'till') as reg \gset

-- TEST: members
select throws_ok(
  $$insert into public.shop_members (shop_id, user_id, role) values ('aaaaaaaa-0000-4000-8000-000000000000', 'b0000000-0000-4000-8000-000000000002', 'owner')$$,
  '42501', null, 'staff cannot add a member'
);
update public.shop_members set role = 'owner' where user_id = 'a0000000-0000-4000-8000-000000000002';
-- TEST: licences
select throws_ok(
  $$insert into public.licenses (shop_id, max_devices, valid_until) values ('aaaaaaaa-0000-4000-8000-000000000000', 99, now())$$,
  '42501', null, 'staff cannot insert a licence'
);
update public.licenses set max_devices = 99, valid_until = now() + interval '10 years';
-- devices and the shop itself
update public.devices set revoked_at = now();
update public.shops set name = 'renamed by staff';
-- TEST: settings, directly and through push
select throws_ok(
  $$insert into public.shop_settings (id, shop_id, key, value) values ('5e000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000000', 'tax', '1')$$,
  '42501', null, 'staff cannot insert a setting directly'
);
update public.shop_settings set value = '"USD"';
select public.sync_push('d0000000-0000-4000-8000-0000000000a2', jsonb_build_array(
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000001', 'table', 'shop_settings', 'op', 'update',
    'row_id', :'a_cur', 'base_version', 1, 'data', '{"value": "USD"}'::jsonb),
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000002', 'table', 'customers', 'op', 'insert',
    'row_id', 'c0000000-0000-4000-8000-000000000001', 'data', '{"name": "Staff may add customers"}'::jsonb)
)) as r \gset
select is((:'r'::jsonb) #>> '{results,0,status}', 'rejected', 'a settings push by staff is rejected');
select is((:'r'::jsonb) #>> '{results,0,reason}', 'role_forbidden', '... with reason role_forbidden');
select is((:'r'::jsonb) #>> '{results,1,status}', 'applied', 'staff may still push sync data in the same batch');

reset role;
select is(
  (select role from public.shop_members where user_id = 'a0000000-0000-4000-8000-000000000002'),
  'staff', 'staff did not promote themselves'
);
select results_eq(
  $$select max_devices from public.licenses where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'$$,
  $$values (5)$$, 'the licence is unchanged'
);
select is(
  (select count(*)::int from public.devices where revoked_at is not null), 0, 'staff revoked no device'
);
select is(
  (select name from public.shops where id = 'aaaaaaaa-0000-4000-8000-000000000000'), 'Shop A', 'staff did not rename the shop'
);
select results_eq(
  $$select value, version from public.shop_settings where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'$$,
  $$values ('"EUR"'::jsonb, 1::bigint)$$, 'the currency setting is unchanged'
);

select * from finish();
rollback;
