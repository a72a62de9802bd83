-- Threat closed: rate windows were calendar minutes, so a burst straddling a minute boundary
-- started counting from one again: a device (or a user's pulls, verifications, registrations) got
-- twice its limit within seconds, and a test whose calls straddled a boundary was never limited.
-- Now a window lasts a minute from its first call. (now() is fixed inside this transaction, so
-- the window's start is set relative to it: no waiting for the clock.)
begin;
select plan(6);

update shopsync.config set value = '2'
where key in ('push_calls_per_minute', 'pull_calls_per_minute');

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1');

-- TEST: two pushes in a window that opened just before the current calendar minute: the third is refused
reset role;
insert into shopsync.device_rate (device_id, window_start, calls)
values ('d0000000-0000-4000-8000-0000000000d1', date_trunc('minute', now()) - interval '1 microsecond', 2)
on conflict (device_id) do update set window_start = excluded.window_start, calls = excluded.calls;
call tests.authenticate_as('staff@shop-a.test');
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[]')$$,
  'PT429', null, 'a new calendar minute does not reset a device''s push count mid-window'
);

-- TEST: the refusal names when the window ends
select throws_like(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[]')$$,
  '%exceeded 2 pushes per minute%', 'refused again within the window'
);
reset role;
select is(
  (select window_start from shopsync.device_rate where device_id = 'd0000000-0000-4000-8000-0000000000d1'),
  date_trunc('minute', now()) - interval '1 microsecond',
  'refused calls do not extend the window'
);

-- TEST: a minute after the window opened, the device pushes again
update shopsync.device_rate set window_start = now() - interval '1 minute'
where device_id = 'd0000000-0000-4000-8000-0000000000d1';
call tests.authenticate_as('staff@shop-a.test');
select lives_ok($$select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[]')$$,
  'the device pushes again once its window has ended');

-- TEST: the same for metered calls (pulls per user)
reset role;
insert into shopsync.call_rate (user_id, kind, window_start, calls)
select
  u.id,
  'pull',
  date_trunc('minute', now()) - interval '1 microsecond',
  2
from auth.users as u where u.email = 'staff@shop-a.test'
on conflict (user_id, kind) do update set window_start = excluded.window_start, calls = excluded.calls;
call tests.authenticate_as('staff@shop-a.test');
select throws_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0, 1)$$,
  'PT429', null, 'a new calendar minute does not reset a user''s pull count mid-window'
);
reset role;
update shopsync.call_rate set window_start = now() - interval '61 seconds'
where kind = 'pull' and user_id = (select u.id from auth.users as u where u.email = 'staff@shop-a.test');
call tests.authenticate_as('staff@shop-a.test');
select lives_ok($$select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0, 1)$$,
  'the user pulls again once the window has ended');

select * from finish();
rollback;
