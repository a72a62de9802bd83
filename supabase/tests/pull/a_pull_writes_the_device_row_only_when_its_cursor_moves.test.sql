-- Threat closed: pulls that lock and rewrite the device's row on every call (a poke's pull at the
-- tip, every page of a transaction bigger than a page): each one a row lock and WAL to flush, and
-- two calls of one device waiting on each other. The recorded cursor must still move with every
-- consistent page (retention keeps what a device still needs), and last_pull_at must be set.
-- (pgTAP runs in one transaction: now() does not move, so "at most once a second" means once here;
-- an update shows as a new ctid of the row.)
begin;
select plan(6);

update shopsync.shop_cursor set floor_seq = 0 where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';
select last_seq as s0 from shopsync.shop_cursor where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000e1');

-- TEST: the first pull to the tip records the cursor and the time
select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', 0, 5000) as p1 \gset
reset role;
select ctid::text as row1 from public.devices where id = 'd0000000-0000-4000-8000-0000000000e1' \gset
select is(
  (select last_cursor from public.devices where id = 'd0000000-0000-4000-8000-0000000000e1'), :s0::bigint,
  'a pull to the tip records the cursor'
);
select isnt(
  (select last_pull_at from public.devices where id = 'd0000000-0000-4000-8000-0000000000e1'), null,
  '... and when the device pulled'
);

-- TEST: pulls at the tip within the second leave the row alone
call tests.authenticate_as('staff@shop-a.test');
select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', :s0, 5000, :s0) as p2 \gset
select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', :s0, 5000, :s0) as p3 \gset
reset role;
select is(
  (select ctid::text from public.devices where id = 'd0000000-0000-4000-8000-0000000000e1'), :'row1',
  'two more pulls at the tip did not write the device row'
);
select is((:'p3'::json) ->> 'cursor', :s0::text, '... and still answered at the tip');

-- TEST: a pull that moves the cursor writes it at once
insert into public.customers (id, shop_id, name)
values ('c0000000-0000-4000-8000-0000000000e1', 'aaaaaaaa-0000-4000-8000-000000000000', 'Moves the cursor');
call tests.authenticate_as('staff@shop-a.test');
select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', :s0, 5000, :s0) as p4 \gset
reset role;
select is(
  (select last_cursor from public.devices where id = 'd0000000-0000-4000-8000-0000000000e1'),
  ((:'p4'::json) ->> 'cursor')::bigint,
  'a consistent page past the recorded cursor records the new one'
);
select cmp_ok(((:'p4'::json) ->> 'cursor')::bigint, '>', :s0::bigint, '... which is past the old one');

select * from finish();
rollback;
