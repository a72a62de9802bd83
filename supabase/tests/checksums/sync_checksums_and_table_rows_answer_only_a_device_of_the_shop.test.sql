-- Threat closed: a device compares against checksums that do not match the cursor it is given
-- (read at different moments), or reads another shop's rows through the repair path; a member
-- without the device's secret uses the repair RPCs; repairs go uncounted.
begin;
select plan(11);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000e1');

-- TEST: the answer carries the shop's cursor and every synced table's kept count and checksum.
select public.sync_checksums('d0000000-0000-4000-8000-0000000000e1') as c \gset
call tests.clear_authentication();
select is(
  ((:'c'::jsonb) ->> 'cursor')::bigint,
  (select last_seq from shopsync.shop_cursor where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'),
  'the cursor is the shop''s'
);
select is(
  (select t.value ->> 'checksum' from jsonb_array_elements((:'c'::jsonb) -> 'tables') as t (value)
   where t.value ->> 'table' = 'customers'),
  (select lpad(to_hex(k.checksum), 16, '0') from shopsync.table_checksums as k
   where k.shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and k.table_name = 'customers'),
  'the customers checksum is the kept one'
);
select is(
  (select count(*) from jsonb_array_elements((:'c'::jsonb) -> 'tables')),
  (select count(*) from shopsync.synced_tables),
  'every synced table is answered'
);

-- TEST: rows named in p_exclude are taken out of count and checksum.
select id as c1 from public.customers where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and deleted_at is null
order by id limit 1 \gset
call tests.authenticate_as('staff@shop-a.test');
select public.sync_checksums('d0000000-0000-4000-8000-0000000000e1', jsonb_build_object('customers', jsonb_build_array(:'c1'))) as x \gset
select is(
  (select (t.value ->> 'count')::bigint + 1 from jsonb_array_elements((:'x'::jsonb) -> 'tables') as t (value)
   where t.value ->> 'table' = 'customers'),
  (select (t.value ->> 'count')::bigint from jsonb_array_elements((:'c'::jsonb) -> 'tables') as t (value)
   where t.value ->> 'table' = 'customers'),
  'a named row is not counted'
);
select throws_ok(
  $$select public.sync_checksums('d0000000-0000-4000-8000-0000000000e1', '{"customers": ["nope"]}')$$,
  'PT400', null, 'p_exclude holds row ids only'
);

-- TEST: table rows come by id, in pages, live rows of the device's shop only.
select public.sync_table_rows('d0000000-0000-4000-8000-0000000000e1', 'customers', null, 2) as p1 \gset
select public.sync_table_rows('d0000000-0000-4000-8000-0000000000e1', 'customers', ((:'p1'::jsonb) ->> 'next_after')::uuid, 5000) as p2 \gset
call tests.clear_authentication();
select is(
  jsonb_array_length((:'p1'::jsonb) -> 'rows') + jsonb_array_length((:'p2'::jsonb) -> 'rows'),
  (select count(*)::int from public.customers where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and deleted_at is null),
  'two pages hold every live customer of shop A'
);
select is(
  (select count(*) from jsonb_array_elements((:'p2'::jsonb) -> 'rows') as r (value)
   where r.value ->> 'shop_id' <> 'aaaaaaaa-0000-4000-8000-000000000000'),
  0::bigint, 'no row of another shop'
);
call tests.authenticate_as('staff@shop-a.test');
select throws_ok(
  $$select public.sync_table_rows('d0000000-0000-4000-8000-0000000000e1', 'shop_members')$$,
  'PT400', null, 'only synced tables can be fetched'
);

-- TEST: without the device's secret, nothing.
call tests.use_device_secret('not-the-secret');
select throws_ok(
  $$select public.sync_checksums('d0000000-0000-4000-8000-0000000000e1')$$,
  'PT403', null, 'sync_checksums needs the device secret'
);
select throws_ok(
  $$select public.sync_report_repair('d0000000-0000-4000-8000-0000000000e1', 'customers', 1)$$,
  'PT403', null, 'sync_report_repair needs the device secret'
);

-- TEST: a reported repair shows in the owner's sync_metrics.
call tests.use_device_secret(tests.device_secret());
select public.sync_report_repair('d0000000-0000-4000-8000-0000000000e1', 'customers', 3) is not null as r \gset
call tests.authenticate_as('owner@shop-a.test');
select is(
  jsonb_path_query_first(public.sync_metrics(), '$.devices[*] ? (@.device_id == "d0000000-0000-4000-8000-0000000000e1").repairs'),
  '1'::jsonb, 'the owner sees the device''s repair'
);

select * from finish();
rollback;
