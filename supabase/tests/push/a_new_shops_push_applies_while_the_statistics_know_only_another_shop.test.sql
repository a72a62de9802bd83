-- The state of the push cliff (issue 13): the statistics say another shop holds every row
-- (analyzed right after its burst) while the pushing shop already has thousands. Its rows were
-- estimated at one and plans that read the shared tables by shop scanned all of them on every call;
-- the statements now read by the batch's keys (migration 20261201004000). Here: updates, inserts and
-- a conflict's server row in that state come out right. (The speed is in `make bench`: the row
-- "new shop's backlog ... after 60,000 elsewhere".)
begin;
select plan(2);

-- Another shop's burst, and the statistics taken right after it.
select tests.create_shop('elsewhere') as elsewhere \gset
insert into shopsync.push_results (shop_id, event_id, device_id, result)
select
    :'elsewhere',
    gen_random_uuid(),
    gen_random_uuid(),
    '{}'
from generate_series(1, 20000);
insert into public.customers (id, shop_id, name)
select
    gen_random_uuid(),
    :'elsewhere',
    'Elsewhere ' || g
from generate_series(1, 5000) as g;
analyze shopsync.push_results;
analyze public.customers;

-- A new shop that has since pushed 3,000 events: unknown to the statistics.
select tests.create_shop('new', 10) as shop \gset
select tests.create_member(:'shop', 'staff', 'staff@new-shop.test');
insert into shopsync.push_results (shop_id, event_id, device_id, result)
select
    :'shop',
    gen_random_uuid(),
    gen_random_uuid(),
    '{"status": "applied"}'
from generate_series(1, 3000);
insert into public.customers (id, shop_id, name)
select
    ('c1000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
    :'shop',
    'Customer ' || g
from generate_series(1, 3000) as g;

call tests.authenticate_as('staff@new-shop.test');
call tests.register_device('d0000000-0000-4000-8000-0000000013a1');

-- 5 updates, 5 inserts and an insert of an existing id (a conflict with its server row).
select public.sync_push('d0000000-0000-4000-8000-0000000013a1', (
  select jsonb_agg(ev order by n) from (
    select
g as n,
jsonb_build_object('event_id', gen_random_uuid(), 'table', 'customers', 'op', 'update',
      'row_id', 'c1000000-0000-4000-8000-' || lpad(g::text, 12, '0'), 'base_version', 1,
      'data', jsonb_build_object('notes', 'updated')) as ev
    from generate_series(1, 5) as g
    union all
    select
10 + g,
jsonb_build_object('event_id', gen_random_uuid(), 'table', 'customers', 'op', 'insert',
      'row_id', gen_random_uuid(), 'data', jsonb_build_object('name', 'New ' || g))
    from generate_series(1, 5) as g
    union all
    select
20,
jsonb_build_object('event_id', gen_random_uuid(), 'table', 'customers', 'op', 'insert',
      'row_id', 'c1000000-0000-4000-8000-000000000100', 'data', jsonb_build_object('name', 'Taken'))
  ) as x
)) as r \gset

-- TEST: the push did what it says
select is(
  jsonb_path_query_array(:'r'::jsonb, '$.results[*].status'),
  '["applied", "applied", "applied", "applied", "applied", "applied", "applied", "applied", "applied",
    "applied", "conflict"]'::jsonb,
  'updates and inserts applied, the taken id a conflict'
);
select is((:'r'::jsonb) #>> '{results,10,server_row,name}', 'Customer 100', 'the conflict carries the server row');

select * from finish();
rollback;
