-- Threat closed (issue 12, item 7): an owner un-revoked devices through the table path past the
-- licence's seats and could write a device's server-owned columns; a viewer took the last seats by
-- registering devices; registration took an unbounded platform string.
begin;
select plan(9);

-- Shop B's licence has 3 seats. Its owner fills them.
call tests.authenticate_as('owner@shop-b.test');
select public.sync_register_device('d0000000-0000-4000-8000-0000000000b1', 'till 1') is not null as ok1 \gset
select public.sync_register_device('d0000000-0000-4000-8000-0000000000b2', 'till 2') is not null as ok2 \gset
update public.devices set revoked_at = now() where id = 'd0000000-0000-4000-8000-0000000000b2';
select public.sync_register_device('d0000000-0000-4000-8000-0000000000b3', 'till 3') is not null as ok3 \gset
select public.sync_register_device('d0000000-0000-4000-8000-0000000000b4', 'till 4') is not null as ok4 \gset

-- TEST: with every seat taken, un-revoking through the table path is refused
select throws_ok(
  $$update public.devices set revoked_at = null where id = 'd0000000-0000-4000-8000-0000000000b2'$$,
  'PT402', null, 'an owner cannot un-revoke a device past the licence'
);

-- TEST: with a free seat, it is allowed
update public.devices set revoked_at = now() where id = 'd0000000-0000-4000-8000-0000000000b4';
select lives_ok(
  $$update public.devices set revoked_at = null where id = 'd0000000-0000-4000-8000-0000000000b2'$$,
  'an owner can un-revoke a device into a free seat'
);

-- TEST: an owner renames a device, but cannot write its server-owned columns
select lives_ok(
  $$update public.devices set name = 'front till' where id = 'd0000000-0000-4000-8000-0000000000b1'$$,
  'an owner can rename a device'
);
select throws_ok(
  $$update public.devices set last_cursor = 999999, pull_floor = 999999 where id = 'd0000000-0000-4000-8000-0000000000b1'$$,
  '42501', null, 'an owner cannot write a device''s cursor or pull floor'
);
select throws_ok(
  $$update public.devices set user_id = 'b0000000-0000-4000-8000-000000000002' where id = 'd0000000-0000-4000-8000-0000000000b1'$$,
  '42501', null, 'an owner cannot reassign a device''s user'
);

-- TEST: registration refuses an oversized platform
select throws_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-0000000000b5', 'x', repeat('p', 101))$$,
  'PT400', null, 'p_platform is bounded'
);

-- Shop A: the owner registers the viewer's tablet.
call tests.authenticate_as('owner@shop-a.test');
select public.sync_register_device('d0000000-0000-4000-8000-0000000000a9', 'viewer tablet') ->> 'device_secret' as a9_secret \gset
-- ... and the tablet keeps the secret it was issued; whoever signs in on it sends that.
call tests.use_device_secret(:'a9_secret');

call tests.authenticate_as('viewer@shop-a.test');
-- TEST: a viewer cannot register a new device (take a seat)
select throws_ok(
  $$select public.sync_register_device('d0000000-0000-4000-8000-0000000000aa', 'viewer phone')$$,
  'PT403', null, 'a viewer cannot register a new device'
);
-- TEST: a viewer uses a device an owner registered
select is(
  public.sync_register_device('d0000000-0000-4000-8000-0000000000a9', 'viewer tablet') ->> 'role', 'viewer',
  'a viewer re-registers an existing device'
);
select ok(
  jsonb_array_length(public.sync_pull('d0000000-0000-4000-8000-0000000000a9', 0) -> 'changes') > 0,
  'and pulls with it'
);

select * from finish();
rollback;
