-- Threat closed (issue 12, item 1): device ids are not secret (pulled rows carry last_device_id,
-- invoices device_id), and any member could push, pull or register as any device of their shop:
-- a staff member appended an invoice to the owner's till's series, wedging that till for good.
-- Now acting as a device needs the secret issued to it at registration (x-device-secret header);
-- it rotates, an owner resets it, and devices registered before credentials are claimed once.
begin;
select plan(27);

update public.licenses set max_devices = 50 where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';

-- The owner registers the till; the till keeps the secret it is issued (once).
call tests.authenticate_as('owner@shop-a.test');
call tests.use_device_secret(null);
select tests.register_device_secret('d0000000-0000-4000-8000-0000000000c1', 'owner till') as till_secret \gset

-- TEST: the secret is 32 random bytes, base64url, and the server keeps only its hash, unreadable
select ok(:'till_secret' ~ '^[A-Za-z0-9_-]{43}$', 'registration returns a 32-byte base64url device_secret');
select throws_ok(
  $$select * from shopsync.device_credentials$$, '42501', null,
  'no API role reads the credential table'
);
reset role;
select is(
  (select secret_hash from shopsync.device_credentials where device_id = 'd0000000-0000-4000-8000-0000000000c1'),
  extensions.digest(:'till_secret', 'sha256'),
  'the server keeps the SHA-256 of the secret, not the secret'
);
call tests.authenticate_as('owner@shop-a.test');
call tests.use_device_secret(:'till_secret');
select is(
  public.sync_register_device('d0000000-0000-4000-8000-0000000000c1', 'owner till') ? 'device_secret', false,
  'registering again with the secret issues no new one'
);

-- TEST: a staff member of the same shop, without the till's secret, cannot push, pull or register as it
call tests.authenticate_as('staff@shop-a.test');
call tests.use_device_secret(null);
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000c1', '[]')$$,
  'PT403', 'the x-device-secret header is missing or not this device''s secret',
  'staff without the secret cannot push as the owner''s till'
);
select throws_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-0000000000c1', 0)$$,
  'PT403', 'the x-device-secret header is missing or not this device''s secret',
  'staff without the secret cannot pull as the owner''s till'
);
select throws_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-0000000000c1', 'mine now')$$,
  'PT403', 'the x-device-secret header is missing or not this device''s secret',
  'staff without the secret cannot register the owner''s till again'
);
call tests.use_device_secret('bm90LXRoZS10aWxscy1zZWNyZXQtYnV0LTQzLWNoYXJzLWxvbmc');
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000c1', '[]')$$,
  'PT403', 'the x-device-secret header is missing or not this device''s secret',
  'a wrong secret is refused the same way'
);
select throws_ok(
  $$select public.sync_rotate_device_secret('d0000000-0000-4000-8000-0000000000c1')$$,
  'PT403', 'the x-device-secret header is missing or not this device''s secret',
  'and cannot rotate the till''s secret'
);

-- TEST: a shared till: any member signed in on it uses the till's secret (the token says who)
call tests.use_device_secret(:'till_secret');
select lives_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000c1', '[]')$$,
  'staff signed in on the till push with its secret'
);
call tests.authenticate_as('viewer@shop-a.test');
select lives_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-0000000000c1', 0)$$,
  'a viewer signed in on the till pulls with its secret'
);

-- TEST: rotation: the current secret gets a new one; the old one works until the new one is used
call tests.authenticate_as('owner@shop-a.test');
select public.sync_rotate_device_secret('d0000000-0000-4000-8000-0000000000c1') ->> 'device_secret' as rotated \gset
select isnt(:'rotated'::text, :'till_secret'::text, 'rotation issues a new secret');
select lives_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-0000000000c1', 0)$$,
  'the old secret still works until the new one is used (a lost answer locks nothing out)'
);
call tests.use_device_secret(:'rotated');
select lives_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-0000000000c1', 0)$$,
  'the new secret works'
);
call tests.use_device_secret(:'till_secret');
select throws_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-0000000000c1', 0)$$,
  'PT403', 'the x-device-secret header is missing or not this device''s secret',
  'once the new secret was used, the old one is refused'
);

-- TEST: reset: only an owner; the secret stops at once; an owner or staff member registers again
call tests.authenticate_as('staff@shop-a.test');
select throws_ok(
  $$select public.sync_reset_device_credential('d0000000-0000-4000-8000-0000000000c1')$$,
  'PT403', 'only an owner resets a device''s credential', 'staff cannot reset a device''s credential'
);
call tests.authenticate_as('owner@shop-a.test');
select lives_ok(
  $$select public.sync_reset_device_credential('d0000000-0000-4000-8000-0000000000c1')$$,
  'an owner resets the till''s credential'
);
call tests.use_device_secret(:'rotated');
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000c1', '[]')$$,
  'PT403', null, 'after a reset the till''s secret is refused'
);
call tests.authenticate_as('viewer@shop-a.test');
select throws_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-0000000000c1', 'owner till')$$,
  'PT403', null, 'a viewer cannot take a reset device'
);
call tests.authenticate_as('owner@shop-a.test');
select tests.register_device_secret('d0000000-0000-4000-8000-0000000000c1', 'owner till') as reissued \gset
select ok(:'reissued' ~ '^[A-Za-z0-9_-]{43}$', 'the next owner registration issues a new secret');
call tests.use_device_secret(:'reissued');
select lives_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000c1', '[]')$$,
  'and the till syncs with it'
);

-- A device registered before credentials existed (its credential row is missing), by staff.
reset role;
insert into public.devices (id, shop_id, user_id, name)
select
  'd0000000-0000-4000-8000-0000000000c2',
  'aaaaaaaa-0000-4000-8000-000000000000',
  us.user_id,
  'old till'
from tests.user_and_shop('staff@shop-a.test') as us;

-- TEST: legacy devices: refused until claimed; only the member who registered it claims it, once
call tests.authenticate_as('staff@shop-a.test');
call tests.use_device_secret(null);
select throws_like(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000c2', '[]')$$,
  '%has no credential yet%', 'a device without a credential cannot push before it claims one'
);
call tests.authenticate_as('owner@shop-a.test');
select throws_like(
  $$select public.sync_register_device('d0000000-0000-4000-8000-0000000000c2', 'old till')$$,
  '%registered before device credentials by another member%',
  'another member (even the owner) cannot claim it'
);
call tests.authenticate_as('staff@shop-a.test');
select tests.register_device_secret('d0000000-0000-4000-8000-0000000000c2', 'old till') as claimed \gset
select ok(:'claimed' ~ '^[A-Za-z0-9_-]{43}$', 'the member who registered it claims a secret');
select throws_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-0000000000c2', 'old till')$$,
  'PT403', 'the x-device-secret header is missing or not this device''s secret',
  'a second claim (without the secret) is refused'
);
call tests.use_device_secret(:'claimed');
select lives_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000c2', '[]')$$,
  'the claimed device pushes with its secret'
);

-- TEST: the reset is recorded in the audit log
reset role;
select is(
  (select count(*)::int from shopsync.audit_log
   where action = 'reset_device_credential' and row_id = 'd0000000-0000-4000-8000-0000000000c1'),
  1, 'the reset is in the audit log'
);

select * from finish();
rollback;
