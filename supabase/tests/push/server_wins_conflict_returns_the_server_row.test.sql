-- Threat closed: a device silently overwriting a shop setting another device changed meanwhile;
-- under server_wins the stale write is not applied and the device gets the server's row.
begin;
select plan(7);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/currency') as cur \gset
select
  version as v,
  (
    select count(*) from shopsync.change_log as cl
    where cl.row_id = :'cur'
  ) as log_n
from public.shop_settings
where id = :'cur' \gset

call tests.authenticate_as('owner@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'office');
call tests.register_device('d0000000-0000-4000-8000-0000000000d2', 'phone');

select public.sync_push('d0000000-0000-4000-8000-0000000000d2', jsonb_build_array(jsonb_build_object(
  'event_id', 'e0000000-0000-4000-8000-000000000001', 'table', 'shop_settings', 'op', 'update',
  'row_id', :'cur', 'base_version', :v, 'data', '{"value": "USD"}'::jsonb, 'client_ts', '2020-01-01T00:00:00Z'
))) as p1 \gset
-- a later client_ts does not help under server_wins
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', jsonb_build_array(jsonb_build_object(
  'event_id', 'e0000000-0000-4000-8000-000000000002', 'table', 'shop_settings', 'op', 'update',
  'row_id', :'cur', 'base_version', :v, 'data', '{"value": "GBP"}'::jsonb, 'client_ts', '2021-01-01T00:00:00Z'
))) as p2 \gset

select is((:'p1'::jsonb) #>> '{results,0,status}', 'applied', 'the first owner update applies');
-- TEST: the stale overlapping update is a conflict carrying the server's row
select is((:'p2'::jsonb) #>> '{results,0,status}', 'conflict', 'the stale overlapping update is a conflict');
select is((:'p2'::jsonb) #>> '{results,0,reason}', 'concurrent_update', '... with reason concurrent_update');
select is((:'p2'::jsonb) #> '{results,0,server_row,value}', '"USD"'::jsonb, 'server_row holds the server''s value');
select is(((:'p2'::jsonb) #>> '{results,0,server_row,version}')::bigint, (:v + 1)::bigint, 'server_row holds the server''s version');

reset role;
-- TEST: nothing was applied
select results_eq(
  format('select value, version from public.shop_settings where id = %L', :'cur'),
  format($$values ('"USD"'::jsonb, %s::bigint)$$, :v + 1),
  'the setting keeps the server''s value and version'
);
select is(
  (
    select count(*)::int from shopsync.change_log
    where row_id = :'cur'
  ), (:log_n + 1
  )::int,
  'the conflict wrote no change-log entry'
);

select * from finish();
rollback;
