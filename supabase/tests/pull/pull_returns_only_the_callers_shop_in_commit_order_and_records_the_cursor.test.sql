-- Threat closed: a pull that leaks another shop's changes, returns them out of seq order, skips or
-- repeats entries across pages, or loses track of how far a device got.
begin;
select plan(13);

-- paging is tested here, not the retention floor (see pull_below_the_floor_requires_a_reset)
update shopsync.shop_cursor set floor_seq = 0 where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';
-- shop B writes in between, so the two shops' logs interleave in time
update public.customers set notes = 'b note' where shop_id = 'bbbbbbbb-0000-4000-8000-000000000000';
select last_seq as a_last from shopsync.shop_cursor where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1');

-- TEST: a full pull returns shop A's log in seq order, only shop A
select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0, 5000) as full \gset
reset role;
select array_agg(seq order by seq) as a_seqs from shopsync.change_log where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset
call tests.authenticate_as('staff@shop-a.test');
select is(
  (select array_agg((c ->> 'seq')::bigint order by o) from jsonb_array_elements((:'full'::jsonb) -> 'changes') with ordinality as x (c, o)),
  :'a_seqs'::bigint [],
  'a pull from 0 returns every entry of shop A''s log, in seq order'
);
select is(
  (select count(*)::int from jsonb_array_elements((:'full'::jsonb) -> 'changes') as c
   where c -> 'row' ->> 'shop_id' <> 'aaaaaaaa-0000-4000-8000-000000000000'),
  0, 'no change of another shop'
);
select ok(
  (select bool_and(c ? 'table' and c ? 'op' and c ? 'row_id' and c ? 'version' and c ? 'row')
   from jsonb_array_elements((:'full'::jsonb) -> 'changes') as c),
  'each change carries seq, table, op, row_id, version and row'
);
select is(((:'full'::jsonb) ->> 'cursor')::bigint, :a_last::bigint, 'the cursor is the last seq returned');
select is((:'full'::jsonb) -> 'has_more', 'false'::jsonb, 'has_more is false at the end');
select is((:'full'::jsonb) -> 'reset_required', 'false'::jsonb, 'no reset required');

-- TEST: paging: pages of 3 cover every seq exactly once
select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0, 3) as page1 \gset
select is(
  (select array_agg((c ->> 'seq')::bigint) from jsonb_array_elements((:'page1'::jsonb) -> 'changes') as c),
  (:'a_seqs'::bigint [])[1:3], 'the first page holds the first three entries'
);
select is((:'page1'::jsonb) -> 'has_more', 'true'::jsonb, 'has_more is true mid-log');
select is(((:'page1'::jsonb) ->> 'remaining')::bigint, (:a_last - (:'a_seqs'::bigint [])[3])::bigint, 'remaining counts what is left');
select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', ((:'page1'::jsonb) ->> 'cursor')::bigint, 3) as page2 \gset
select is(
  (select array_agg((c ->> 'seq')::bigint) from jsonb_array_elements((:'page2'::jsonb) -> 'changes') as c),
  (:'a_seqs'::bigint [])[4:6], 'the next page continues with the fourth entry'
);

-- TEST: new writes appear after the cursor
update public.products set price = 99 where sku = 'MUG-01';
select is(
  (select jsonb_agg(c ->> 'table') from jsonb_array_elements(
     public.sync_pull('d0000000-0000-4000-8000-0000000000d1', :a_last) -> 'changes') as c),
  '["products"]'::jsonb,
  'a pull from the last cursor returns just the new change'
);

reset role;
-- TEST: the device's cursor is recorded (and never moves back)
select is(
  (select last_cursor from public.devices where id = 'd0000000-0000-4000-8000-0000000000d1'),
  (:a_last + 1)::bigint, 'devices.last_cursor holds the highest cursor pulled'
);
select isnt(
  (select last_pull_at from public.devices where id = 'd0000000-0000-4000-8000-0000000000d1'), null,
  'devices.last_pull_at is set'
);

select * from finish();
rollback;
