-- Threat closed: an offline edit silently resurrecting (or editing invisibly) a row another
-- device deleted.
begin;
select plan(7);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1');
call tests.register_device('d0000000-0000-4000-8000-0000000000d2', 'till 2');

select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000001", "data": {"name": "Doomed"}}]') as p0 \gset
select public.sync_push('d0000000-0000-4000-8000-0000000000d2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "customers", "op": "delete",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1}]') as p1 \gset
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', '[
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 1, "data": {"notes": "edited offline"}},
  {"event_id": "e0000000-0000-4000-8000-000000000004", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 2, "data": {"notes": "edited on the current version"}}
]') as p2 \gset

select is((:'p1'::jsonb) #>> '{results,0,status}', 'applied', 'device 2 deletes the row');
-- TEST: updates of the tombstone are row_deleted conflicts carrying the tombstone
select is((:'p2'::jsonb) #>> '{results,0,status}', 'conflict', 'a stale update of a deleted row is a conflict');
select is((:'p2'::jsonb) #>> '{results,0,reason}', 'row_deleted', '... with reason row_deleted');
select isnt((:'p2'::jsonb) #>> '{results,0,server_row,deleted_at}', null, 'server_row shows the tombstone');
select is((:'p2'::jsonb) #>> '{results,1,reason}', 'row_deleted', 'even an update on the tombstone''s own version is row_deleted');

reset role;
select results_eq(
  $$select notes, version from public.customers where id = 'c0000000-0000-4000-8000-000000000001'$$,
  $$values (null::text, 2::bigint)$$,
  'the tombstone was not edited'
);
select isnt(
  (
    select deleted_at from public.customers
    where id = 'c0000000-0000-4000-8000-000000000001'
  ), null,
  'the row stays deleted'
);

select * from finish();
rollback;
