-- Threat closed: a device that was offline while tombstones were purged pulling on as if nothing
-- was missing (it would never learn of those deletes); below the floor it must start over.
begin;
select plan(7);

update shopsync.shop_cursor set floor_seq = 5
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1');

-- TEST: a cursor below the floor answers reset_required with no changes
select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 3) as below \gset
select is((:'below'::jsonb) -> 'reset_required', 'true'::jsonb, 'a cursor below the floor requires a reset');
select is((:'below'::jsonb) -> 'changes', '[]'::jsonb, '... and returns no changes');
select is(((:'below'::jsonb) ->> 'cursor')::bigint, 0::bigint, '... and cursor 0 to start over from');

-- TEST: at the floor, or from 0 (a full resync), pulls proceed
select is(
  public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 5) -> 'reset_required', 'false'::jsonb,
  'a cursor at the floor pulls normally'
);
select is(
  public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0, 5000) -> 'reset_required', 'false'::jsonb,
  'a full resync from 0 pulls normally'
);

-- TEST: a cursor ahead of the log is refused
select throws_ok(
  $$select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 1000000)$$,
  'PT409', null, 'a cursor ahead of the shop''s log is refused'
);

reset role;
select is(
  (
    select last_cursor from public.devices
    where id = 'd0000000-0000-4000-8000-0000000000d1'
  ),
  (
    select last_seq from shopsync.shop_cursor
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'
  ),
  'the reset pull did not record a cursor below the floor; the full resync recorded the end'
);

select * from finish();
rollback;
