-- Threat closed: staff promoting themselves, extending the licence, adding devices seats, or
-- changing shop settings; only owners manage the shop.
begin;
select plan(11);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/currency') as a_cur \gset
select
  value as cur_value,
  version as cur_v
from public.shop_settings
where id = :'a_cur' \gset
select max_devices as max_dev from public.licenses
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset
select name as shop_name from public.shops
where id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset
select count(*) as revoked_n from public.devices
where revoked_at is not null \gset

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000a2');

-- TEST: members
select throws_ok(
  $$insert into public.shop_members (shop_id, user_id, role) values ('aaaaaaaa-0000-4000-8000-000000000000', 'b0000000-0000-4000-8000-000000000002', 'owner')$$,
  '42501', null, 'staff cannot add a member'
);
update public.shop_members set role = 'owner'
where user_id = 'a0000000-0000-4000-8000-000000000002';
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
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000001', 'table', 'shop_settings', 'op', 'update',
    'row_id', :'a_cur', 'base_version', :cur_v, 'data', '{"value": "USD"}'::jsonb
  ),
  jsonb_build_object(
    'event_id', 'e0000000-0000-4000-8000-000000000002', 'table', 'customers', 'op', 'insert',
    'row_id', 'c0000000-0000-4000-8000-000000000001', 'data', '{"name": "Staff may add customers"}'::jsonb
  )
)) as r \gset
select is((:'r'::jsonb) #>> '{results,0,status}', 'rejected', 'a settings push by staff is rejected');
select is((:'r'::jsonb) #>> '{results,0,reason}', 'role_forbidden', '... with reason role_forbidden');
select is((:'r'::jsonb) #>> '{results,1,status}', 'applied', 'staff may still push sync data in the same batch');

reset role;
select is(
  (
    select role from public.shop_members
    where user_id = 'a0000000-0000-4000-8000-000000000002'
  ),
  'staff', 'staff did not promote themselves'
);
select results_eq(
  $$select max_devices from public.licenses where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'$$,
  format('values (%s)', :max_dev), 'the licence is unchanged'
);
select is(
  (
    select count(*)::int from public.devices
    where revoked_at is not null
  ), :revoked_n::int, 'staff revoked no device'
);
select is(
  (
    select name from public.shops
    where id = 'aaaaaaaa-0000-4000-8000-000000000000'
  ), :'shop_name', 'staff did not rename the shop'
);
select results_eq(
  format('select value, version from public.shop_settings where id = %L', :'a_cur'),
  format('values (%L::jsonb, %s::bigint)', :'cur_value', :cur_v), 'the currency setting is unchanged'
);

select * from finish();
rollback;
