-- Threat closed: a runaway or malicious device hammering sync_push; past the configured calls per
-- minute it gets 429 (PT429), the call changes nothing, and other devices are unaffected.
begin;
select plan(6);

update shopsync.config set value = '2'
where key = 'push_calls_per_minute';

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1');
call tests.register_device('d0000000-0000-4000-8000-0000000000d2', 'till 2');

-- TEST: within the limit pushes pass
select lives_ok($$select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[]')$$, 'first push passes');
select lives_ok($$select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[]')$$, 'second push passes');

-- TEST: the next push in the same minute answers PT429 and applies nothing
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[{"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Too fast"}}]')$$,
  'PT429', null, 'the third push in a minute is refused with PT429'
);
reset role;
select is((
  select count(*)::int from public.customers
  where id = 'c0000000-0000-4000-8000-000000000001'
), 0, 'the refused push wrote nothing');

-- TEST: the limit is per device
call tests.authenticate_as('staff@shop-a.test');
select is(
  public.sync_push('d0000000-0000-4000-8000-0000000000d2', '[{"event_id": "e0000000-0000-4000-8000-000000000002", "table": "customers", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000002", "data": {"name": "Other till"}}]') #>> '{results,0,status}',
  'applied', 'another device of the shop still pushes'
);

-- TEST: a new minute resets the window
reset role;
update shopsync.device_rate set window_start = window_start - interval '1 minute'
where device_id = 'd0000000-0000-4000-8000-0000000000d1';
call tests.authenticate_as('staff@shop-a.test');
select lives_ok($$select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[]')$$, 'the device pushes again in the next minute');

select * from finish();
rollback;
