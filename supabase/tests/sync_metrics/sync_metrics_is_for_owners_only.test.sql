-- Threat closed: staff or another shop reading a shop's device inventory and sync statistics.
begin;
select plan(9);

-- today's statistics start empty for shop A (rolled back at the end)
delete from shopsync.push_stats
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1');
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Counted"}},
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "nope", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000002", "data": {}}
]') as p \gset
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Counted"}}]') as p2 \gset

-- TEST: staff and viewers are refused
select throws_ok('select public.sync_metrics()', 'PT403', 'only owners may read sync metrics', 'staff cannot read metrics');
call tests.authenticate_as('viewer@shop-a.test');
select throws_ok('select public.sync_metrics()', 'PT403', null, 'viewers cannot read metrics');

-- TEST: the owner sees devices with lag and per-day counts
call tests.authenticate_as('owner@shop-a.test');
select public.sync_metrics() as m \gset
select is((:'m'::jsonb) ->> 'shop_id', 'aaaaaaaa-0000-4000-8000-000000000000', 'metrics are for the owner''s shop');
select coalesce(jsonb_path_query_first(:'m'::jsonb, '$.devices[*] ? (@.device_id == "d0000000-0000-4000-8000-0000000000d1")'), 'null') as dev \gset
select isnt(:'dev'::jsonb, 'null'::jsonb, 'the device is listed');
select is(
  ((:'dev'::jsonb) ->> 'lag')::bigint, ((:'m'::jsonb) ->> 'last_seq')::bigint,
  'a device that never pulled lags by the whole log'
);
select isnt((:'dev'::jsonb) ->> 'last_push_at', null, 'the last push is recorded');
select is(
  ((:'m'::jsonb) #> '{days,0}') - 'day'::text,
  '{"pushes": 2, "applied": 1, "merged": 0, "conflicts": 0, "rejected": 1, "duplicates": 1}'::jsonb,
  'today: two pushes, one applied, one rejected, one duplicate'
);

-- TEST: another shop's owner sees none of it
call tests.authenticate_as('owner@shop-b.test');
select is(
  jsonb_path_query_array(public.sync_metrics(), '$.devices[*] ? (@.device_id == "d0000000-0000-4000-8000-0000000000d1")'),
  '[]'::jsonb, 'shop B''s owner sees no shop A device'
);
select is(public.sync_metrics() ->> 'shop_id', 'bbbbbbbb-0000-4000-8000-000000000000', 'shop B''s owner gets shop B''s metrics');

select * from finish();
rollback;
