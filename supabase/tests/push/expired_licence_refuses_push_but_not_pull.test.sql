-- Threat closed: an unpaid shop writing on, or a lapsed licence locking users out of their own
-- data: pushes are refused with 402 (changing nothing), pulls continue.
begin;
select plan(6);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1');
reset role;
update public.licenses set valid_until = now() - interval '1 day'
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';

call tests.authenticate_as('staff@shop-a.test');
-- TEST: push is refused with PT402
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[{"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert", "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Unpaid"}}]')$$,
  'PT402',
  'the shop''s licence has expired; pushes are refused until it is renewed (pulls continue)',
  'a push on an expired licence is refused with PT402'
);
-- TEST: pull still works
select ok(
  jsonb_array_length(public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0) -> 'changes') > 0,
  'a pull on an expired licence still returns the shop''s data'
);

reset role;
-- TEST: the refused push changed nothing
select is((
  select count(*)::int from public.customers
  where id = 'c0000000-0000-4000-8000-000000000001'
), 0, 'no row was written');
select is((
  select count(*)::int from shopsync.push_results
  where device_id = 'd0000000-0000-4000-8000-0000000000d1'
), 0, 'no result was stored');

-- TEST: shop B, whose licence is valid, is unaffected
call tests.authenticate_as('staff@shop-b.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000b1');
select is(
  public.sync_push('d0000000-0000-4000-8000-0000000000b1', '[{"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert", "row_id": "c0000000-0000-4000-8000-0000000000b1", "data": {"name": "Paid"}}]') #>> '{results,0,status}',
  'applied', 'another shop with a valid licence still pushes'
);

-- TEST: renewing restores pushes
reset role;
update public.licenses set valid_until = now() + interval '1 day'
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';
call tests.authenticate_as('staff@shop-a.test');
select lives_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[]')$$,
  'after renewal the shop pushes again'
);

select * from finish();
rollback;
