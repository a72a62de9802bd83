-- Threat closed: a client that queues the same event twice in one batch applying it twice.
begin;
select plan(8);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000a2');

select public.sync_push('d0000000-0000-4000-8000-0000000000a2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Once"}},
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Once"}},
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"notes": "+1"}},
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"notes": "+1"}},
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "nope", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000009", "data": {"name": "x"}},
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "nope", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000009", "data": {"name": "x"}}
]') as r \gset

-- TEST: the first occurrence applies, the repeat answers duplicate
select is(
  jsonb_path_query_array(:'r'::jsonb, '$.results[*].status'),
  '["applied", "duplicate", "applied", "duplicate", "rejected", "rejected"]'::jsonb,
  'first occurrences are applied (or rejected), repeats answer duplicate (or the same rejection)'
);
select is((:'r'::jsonb) #>> '{results,1,original_status}', 'applied', 'the repeat names the original status');
select is((:'r'::jsonb) #>> '{results,3,version}', '2', 'the repeated update answers the version it produced');
select is((:'r'::jsonb) #>> '{results,5,reason}', 'unknown_table', 'a repeated bad event gets the same reason');

reset role;
-- TEST: the effects happened once
select results_eq(
  $$select version, notes from public.customers where id = 'c0000000-0000-4000-8000-000000000001'$$,
  $$values (2::bigint, '+1'::text)$$,
  'the row was inserted once and updated once'
);
select is(
  (
    select count(*)::int from shopsync.change_log
    where row_id = 'c0000000-0000-4000-8000-000000000001'
  ), 2,
  'two change-log entries for the row'
);
select is(
  (
    select count(*)::int from shopsync.push_results
    where event_id in ('e0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000002') and result is not null
  ),
  2, 'one stored result per event id'
);
select is(
  (
    select duplicates from shopsync.push_stats
    where device_id = 'd0000000-0000-4000-8000-0000000000a2'
  ), 3,
  'metrics count the three repeats as duplicates'
);

select * from finish();
rollback;
