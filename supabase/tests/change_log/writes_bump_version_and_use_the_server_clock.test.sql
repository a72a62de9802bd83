-- Threat closed: clients (or direct table writes) setting versions or timestamps themselves, which
-- would break optimistic concurrency and let a wrong clock reorder history.
begin;
select plan(10);

call tests.authenticate_as('staff@shop-a.test');

-- TEST: a direct insert gets version 1 and server timestamps, whatever the writer sends
insert into public.customers (id, shop_id, name, version, created_at, updated_at, deleted_at)
values (
  'c0000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000000', 'Clock Test', 42,
  '2000-01-01', '2000-01-01', null
),
(
  'c0000000-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-000000000000', 'Born deleted', 7,
  '2000-01-01', '2000-01-01', '2000-01-01'
);
select results_eq(
  $$select version, created_at, updated_at, deleted_at from public.customers
    where id in ('c0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000002') order by id$$,
  $$values (1::bigint, now(), now(), null::timestamptz), (1, now(), now(), now())$$,
  'insert: version 1, created_at/updated_at/deleted_at from the server clock'
);

-- TEST: a direct update bumps the version by one and keeps created_at
update public.customers set name = 'Clock Test 2', version = 100, created_at = '2000-01-01', updated_at = '2000-01-01'
where id = 'c0000000-0000-4000-8000-000000000001';
select results_eq(
  $$select version, created_at, updated_at from public.customers where id = 'c0000000-0000-4000-8000-000000000001'$$,
  $$select 2::bigint, now(), now()$$,
  'update: version + 1 (not the written 100), created_at kept, updated_at = now()'
);
select is(
  (
    select last_device_id from public.customers
    where id = 'c0000000-0000-4000-8000-000000000001'
  ),
  null,
  'a direct write records no device'
);

-- TEST: a push stores the client's timestamp only as client_changed_at, never as updated_at
call tests.register_device('d0000000-0000-4000-8000-0000000000a2');
select public.sync_push('d0000000-0000-4000-8000-0000000000a2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 2, "data": {"email": "c@example.test"},
   "client_ts": "2001-02-03T04:05:06Z"},
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "products", "op": "insert",
   "row_id": "a1000000-0000-4000-8000-000000000001", "data": {"sku": "NEW-1", "name": "New"},
   "client_ts": "2001-02-03T04:05:06Z"}
]') as r \gset
select is((:'r'::jsonb) #>> '{results,0,status}', 'applied', 'the push update applies');
select is(((:'r'::jsonb) #>> '{results,0,version}')::bigint, 3::bigint, 'the push result carries the new version 3');
select results_eq(
  $$select version, updated_at, client_changed_at, last_device_id from public.customers where id = 'c0000000-0000-4000-8000-000000000001'$$,
  $$select 3::bigint, now(), '2001-02-03T04:05:06Z'::timestamptz, 'd0000000-0000-4000-8000-0000000000a2'::uuid$$,
  'push update: version 3, updated_at = now(), client time kept apart, device recorded'
);
select results_eq(
  $$select version, created_at, updated_at from public.products where id = 'a1000000-0000-4000-8000-000000000001'$$,
  $$select 1::bigint, now(), now()$$,
  'push insert: version 1, server timestamps despite an old client_ts'
);

-- TEST: a soft delete stamps deleted_at with the server clock and bumps the version
select public.sync_push('d0000000-0000-4000-8000-0000000000a2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "customers", "op": "delete",
   "row_id": "c0000000-0000-4000-8000-000000000001", "base_version": 3, "client_ts": "2001-02-03T04:05:06Z"}
]') as r \gset
select results_eq(
  $$select version, deleted_at from public.customers where id = 'c0000000-0000-4000-8000-000000000001'$$,
  $$select 4::bigint, now()$$,
  'push delete: version 4, deleted_at = now()'
);

-- TEST: a later write cannot move deleted_at
update public.customers set deleted_at = '2000-01-01', notes = 'x'
where id = 'c0000000-0000-4000-8000-000000000001';
select results_eq(
  $$select version, deleted_at from public.customers where id = 'c0000000-0000-4000-8000-000000000001'$$,
  $$select 5::bigint, now()$$,
  'an update cannot rewrite deleted_at'
);

-- TEST: change-log entries carry the same versions
reset role;
select results_eq(
  $$select version from shopsync.change_log where row_id = 'c0000000-0000-4000-8000-000000000001' order by seq$$,
  $$values (1::bigint), (2), (3), (4), (5)$$,
  'every version of the row is in the change log, in order'
);

select * from finish();
rollback;
