-- Threat closed: rows of any size. A row larger than sync_max_row_bytes (its data as jsonb) is
-- rejected per event with row_too_large; the rest of the batch applies.
begin;
select plan(5);

select is(
  (select value from shopsync.config where key = 'sync_max_row_bytes'), '6291456'::jsonb,
  'the row limit is 6 MiB by default'
);
update shopsync.config set value = '3000' where key = 'sync_max_row_bytes';

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000e2');

select public.sync_push('d0000000-0000-4000-8000-0000000000e2', jsonb_build_array(
  jsonb_build_object('event_id', 'e2000000-0000-4000-8000-000000000000', 'table', 'customers', 'op', 'insert',
    'row_id', 'c2000000-0000-4000-8000-000000000000', 'data', jsonb_build_object('name', 'Big', 'notes', repeat('n', 3500))),
  jsonb_build_object('event_id', 'e2000000-0000-4000-8000-000000000001', 'table', 'customers', 'op', 'insert',
    'row_id', 'c2000000-0000-4000-8000-000000000001', 'data', jsonb_build_object('name', 'Small', 'notes', repeat('n', 500)))
)) as r \gset

-- TEST: the large row is rejected with row_too_large, the small one applies
select is(
  jsonb_path_query_array(:'r'::jsonb, '$.results[*].status'), '["rejected", "applied"]'::jsonb,
  'the oversize row is rejected, the other applies'
);
select is((:'r'::jsonb) #>> '{results,0,reason}', 'row_too_large', 'reason row_too_large');
select ok((:'r'::jsonb) #>> '{results,0,message}' like '%3000%', 'the message names the limit');

reset role;
select is(
  (select count(*) from public.customers where id = 'c2000000-0000-4000-8000-000000000000'), 0::bigint,
  'the oversize row was not stored'
);

select * from finish();
rollback;
