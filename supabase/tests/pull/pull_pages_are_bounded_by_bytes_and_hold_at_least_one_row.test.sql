-- Threat closed: pull pages bounded by row count only. A shop with large rows (invoices of 500
-- long lines) failed every page with 54000 (total size of jsonb array elements exceeds the
-- maximum). A page now stops before its rows pass pull_max_page_bytes, and holds at least one row.
begin;
select plan(8);

select is(
  (select value from shopsync.config where key = 'pull_max_page_bytes'), '8388608'::jsonb,
  'the page limit is 8 MiB by default'
);

select last_seq as s0 from shopsync.shop_cursor
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset
-- Three rows of about 3.3 kB each: one compressible, two not (md5 text).
insert into public.customers (id, shop_id, name, notes)
select
  gen_random_uuid(),
  'aaaaaaaa-0000-4000-8000-000000000000',
  'Large ' || g,
  case when g = 1 then repeat('x', 3000) else left(repeat(md5(g::text || 'a'), 100), 3000) end
from generate_series(1, 3) as g;

update shopsync.config set value = '5000' where key = 'pull_max_page_bytes';
call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000e3');

-- TEST: the page stops before the row that would take it past the limit
select public.sync_pull('d0000000-0000-4000-8000-0000000000e3', :s0, 500) as p1 \gset
select is(jsonb_array_length((:'p1'::jsonb) -> 'changes'), 1, 'one 3.3 kB row fits under 5000 bytes, two do not');
select is((:'p1'::jsonb) -> 'has_more', 'true'::jsonb, '... and the page says there is more');
select is(((:'p1'::jsonb) ->> 'cursor')::bigint, (:s0 + 1)::bigint, '... and its cursor is that row''s');

-- TEST: the next page goes on from there
select public.sync_pull('d0000000-0000-4000-8000-0000000000e3', ((:'p1'::jsonb) ->> 'cursor')::bigint, 500) as p2 \gset
select is(((:'p2'::jsonb) #>> '{changes,0,seq}')::bigint, (:s0 + 2)::bigint, 'the next page starts at the next row');

-- TEST: a row larger than the limit still comes, alone
reset role;
update shopsync.config set value = '100' where key = 'pull_max_page_bytes';
call tests.authenticate_as('staff@shop-a.test');
select is(
  jsonb_array_length(public.sync_pull('d0000000-0000-4000-8000-0000000000e3', :s0, 500) -> 'changes'), 1,
  'a page holds at least one row, however large'
);

-- TEST: under a larger limit, rows fill the page up to it
reset role;
update shopsync.config set value = '7000' where key = 'pull_max_page_bytes';
call tests.authenticate_as('staff@shop-a.test');
select is(
  jsonb_array_length(public.sync_pull('d0000000-0000-4000-8000-0000000000e3', :s0, 500) -> 'changes'), 2,
  'two rows fit under 7000 bytes'
);
select is(
  jsonb_array_length(public.sync_pull('d0000000-0000-4000-8000-0000000000e3', :s0, 2) -> 'changes'), 2,
  'the row count still bounds the page'
);

select * from finish();
rollback;
