-- Threat closed: an oversized batch starving the database, or a malformed call half-applied; a
-- whole-call error must change nothing so the client can retry the same batch.
begin;
select plan(7);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000a2');

select
  jsonb_agg(jsonb_build_object(
    'event_id', extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'e' || g),
    'table', 'customers', 'op', 'insert',
    'row_id', extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'c' || g),
    'data', jsonb_build_object('name', 'Bulk ' || g)
  ) order by g) as big
from generate_series(1, 1001) as g \gset

-- TEST: 1001 events are refused as a whole with PT400
select throws_ok(
  format('select public.sync_push(%L, %L)', 'd0000000-0000-4000-8000-0000000000a2', :'big'),
  'PT400',
  'a push carries at most 1000 events; this one has 1001',
  'a batch of 1001 events is refused'
);
-- TEST: a payload that is not an array is refused too
select throws_ok(
  $$select public.sync_push('d0000000-0000-4000-8000-0000000000a2', '{"event_id": "x"}')$$,
  'PT400', null, 'a payload that is not an array is refused'
);

reset role;
select is(
  (
    select count(*)::int from public.customers
    where name like 'Bulk %'
  ), 0, 'the refused batch wrote no row'
);
select is(
  (
    select count(*)::int from shopsync.push_results
    where device_id = 'd0000000-0000-4000-8000-0000000000a2'
  ), 0, 'the refused batch stored no result'
);
select is(
  (
    select count(*)::int from shopsync.device_rate
    where device_id = 'd0000000-0000-4000-8000-0000000000a2'
  ), 0,
  'the refused batch did not count against the rate limit'
);

-- TEST: exactly 1000 events are accepted
set local role authenticated;
select is(
  (select count(*)::int from
    jsonb_array_elements(
      public.sync_push('d0000000-0000-4000-8000-0000000000a2', (:'big'::jsonb) - 1000) -> 'results'
    ) as x
  where x ->> 'status' = 'applied'),
  1000,
  'a batch of 1000 events applies'
);
reset role;
select is(
  (
    select count(*)::int from public.customers
    where name like 'Bulk %'
  ), 1000, 'all 1000 rows exist'
);

select * from finish();
rollback;
