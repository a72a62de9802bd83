-- Threat closed: under last_write_wins an older offline edit overwriting a newer one, or a device
-- with a fast clock winning every future conflict (client timestamps are clamped to the server's).
begin;
select plan(14);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1');
call tests.register_device('d0000000-0000-4000-8000-0000000000d2', 'till 2');

select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Original"}, "client_ts": "2020-01-01T00:00:00Z"}]') as p0 \gset
select public.sync_push('d0000000-0000-4000-8000-0000000000d2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"name": "Device 2 at Jan 2"},
   "client_ts": "2020-01-02T00:00:00Z"}]') as p1 \gset

-- TEST: an older overlapping edit loses its overlapping column; its other columns apply
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1,
   "data": {"name": "Device 1 at Jan 1 noon", "notes": "kept"}, "client_ts": "2020-01-01T12:00:00Z"}]') as p2 \gset
select is((:'p2'::jsonb) #>> '{results,0,status}', 'conflict', 'an older edit of an overlapping column is a conflict');
select is((:'p2'::jsonb) #>> '{results,0,reason}', 'overridden', '... with reason overridden');
select is((:'p2'::jsonb) #>> '{results,0,server_row,name}', 'Device 2 at Jan 2', 'the newer server value is kept');
select is((:'p2'::jsonb) #>> '{results,0,server_row,notes}', 'kept', 'the non-overlapping column of the same event applied');

-- TEST: an older edit that touches only overlapping columns changes nothing
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000004", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1,
   "data": {"name": "Device 1 again at Jan 1"}, "client_ts": "2020-01-01T13:00:00Z"}]') as p3 \gset
select is((:'p3'::jsonb) #>> '{results,0,status}', 'conflict', 'an edit that loses every column is a conflict');
select is((:'p3'::jsonb) #>> '{results,0,version}', '3', '... and produces no new version');

-- TEST: a later edit wins and is merged
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000005", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1,
   "data": {"name": "Device 1 at Jan 3"}, "client_ts": "2020-01-03T00:00:00Z"}]') as p4 \gset
select is((:'p4'::jsonb) #>> '{results,0,status}', 'merged', 'a later stale edit wins the column (merged)');
select is((:'p4'::jsonb) #>> '{results,0,version}', '4', '... producing version 4');

-- TEST: a client_ts in the future is clamped to the server's now()
select public.sync_push('d0000000-0000-4000-8000-0000000000d2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000006", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 2,
   "data": {"name": "Fast clock"}, "client_ts": "2999-01-01T00:00:00Z"}]') as p5 \gset
select is((:'p5'::jsonb) #>> '{results,0,status}', 'merged', 'the fast-clock edit is later than Jan 3 and merges');
reset role;
select results_eq(
  $$select client_ts from shopsync.change_log where row_id = 'c0000000-0000-4000-8000-000000000001' and version = 5$$,
  $$select now()$$,
  'its timestamp is stored as the server''s now(), not 2999 (a later honest edit can beat it)'
);
select is(
  (
    select client_changed_at from public.customers
    where id = 'c0000000-0000-4000-8000-000000000001'
  ), now(),
  'the row''s client_changed_at is clamped too'
);
call tests.authenticate_as('staff@shop-a.test');
-- an edit also claiming the future only ties with it, and ties go to the server
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000007", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 4,
   "data": {"name": "Also 2999"}, "client_ts": "2999-06-01T00:00:00Z"}]') as p6 \gset
select is((:'p6'::jsonb) #>> '{results,0,status}', 'conflict', 'two clamped timestamps tie and the server keeps its value');

reset role;
select results_eq(
  $$select name, notes, version from public.customers where id = 'c0000000-0000-4000-8000-000000000001'$$,
  $$values ('Fast clock'::text, 'kept'::text, 5::bigint)$$,
  'final row: the latest winning name, the merged notes, version 5'
);
select is(
  (
    select conflicts from shopsync.push_stats
    where device_id = 'd0000000-0000-4000-8000-0000000000d1'
  ), 3,
  'metrics count three conflicts for device 1'
);

select * from finish();
rollback;
