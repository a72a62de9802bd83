-- Threat closed: a shop running more tills than its licence pays for, a revoked (lost, stolen)
-- device coming back, or a device id of one shop being used from another.
begin;
select plan(13);

-- start from a known seat count: no active device, five seats (rolled back at the end)
update public.devices set revoked_at = now()
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and revoked_at is null;
update public.licenses set max_devices = 5
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';

call tests.authenticate_as('staff@shop-a.test');
-- TEST: registration answers device, shop, role and time, and is idempotent
select public.sync_register_device('d0000000-0000-4000-8000-000000000001', 'till 1', 'ios') as first \gset
-- The till keeps the secret it was issued and sends it from now on.
call tests.use_device_secret(:'first'::jsonb ->> 'device_secret');
select public.sync_register_device('d0000000-0000-4000-8000-000000000001', 'till 1', 'ios') as again \gset
select is((:'first'::jsonb) ->> 'shop_id', 'aaaaaaaa-0000-4000-8000-000000000000', 'the device joins the caller''s shop');
select is((:'first'::jsonb) ->> 'role', 'staff', 'the answer names the caller''s role');
select is((:'again'::jsonb) ->> 'registered_at', (:'first'::jsonb) ->> 'registered_at', 'registering again changes nothing');
select is((
  select count(*)::int from public.devices
  where id = 'd0000000-0000-4000-8000-000000000001'
), 1, 'one device row');

-- TEST: the licence's max_devices is enforced
call tests.register_device('d0000000-0000-4000-8000-000000000002', 'till 2');
call tests.register_device('d0000000-0000-4000-8000-000000000003', 'till 3');
call tests.register_device('d0000000-0000-4000-8000-000000000004', 'till 4');
call tests.register_device('d0000000-0000-4000-8000-000000000005', 'till 5');
select throws_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-000000000006', 'till 6')$$,
  'PT402', 'the licence allows 5 devices and 5 are registered', 'a sixth device is refused with PT402'
);
select lives_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-000000000005', 'till 5')$$,
  'an already registered device still re-registers at the limit'
);

-- TEST: a revoked device can neither re-register nor sync, and frees its seat
call tests.authenticate_as('owner@shop-a.test');
update public.devices set revoked_at = now()
where id = 'd0000000-0000-4000-8000-000000000001';
call tests.authenticate_as('staff@shop-a.test');
select throws_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-000000000001', 'till 1')$$,
  'PT403', null, 'a revoked device cannot re-register'
);
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-000000000001', '[]')$$,
  'PT403', null, 'a revoked device cannot push'
);
select throws_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-000000000001', 0)$$,
  'PT403', null, 'a revoked device cannot pull'
);
select lives_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-000000000006', 'till 6')$$,
  'the revoked device''s seat is free again'
);

-- TEST: a device of shop A is unusable from shop B
call tests.authenticate_as('staff@shop-b.test');
select throws_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-000000000002', 'stolen id')$$,
  'PT403', null, 'registering another shop''s device id is refused'
);
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-000000000002', '[]')$$,
  'PT404', null, 'pushing with another shop''s device is refused as not registered'
);
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000ff', '[]')$$,
  'PT404', null, 'pushing with an unregistered device is refused'
);

select * from finish();
rollback;
