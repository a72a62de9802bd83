-- Threat closed: a timestamp the server accepted that no client can read back. An offset carried a
-- client_ts or a business timestamp (invoices.issued_at) into 1 BC or year 10000, and every Python
-- client of the shop then raised in sync(); a client_ts of year 0000 failed the whole push.
-- Such values are now rejected per event, and the rest of the batch applies.
begin;
select plan(9);

call tests.authenticate_as('owner@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000e1');

select public.sync_push('d0000000-0000-4000-8000-0000000000e1', jsonb_build_array(
  -- 0: an offset carries year 1 into 1 BC
  '{"event_id": "e1000000-0000-4000-8000-000000000000", "table": "customers", "op": "insert", "row_id": "c1000000-0000-4000-8000-000000000000", "data": {"name": "BC"}, "client_ts": "0001-01-01T00:30:00+01:00"}'::jsonb,
  -- 1: year 0000 in the common UTC form (it was cast directly, and failed the whole push)
  '{"event_id": "e1000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert", "row_id": "c1000000-0000-4000-8000-000000000001", "data": {"name": "Zero"}, "client_ts": "0000-06-01T00:00:00Z"}'::jsonb,
  -- 2: seven fractional digits round into year 10000
  '{"event_id": "e1000000-0000-4000-8000-000000000002", "table": "customers", "op": "insert", "row_id": "c1000000-0000-4000-8000-000000000002", "data": {"name": "Round"}, "client_ts": "9999-12-31T23:59:59.9999999Z"}'::jsonb,
  -- 3: a business timestamp whose offset carries it into year 10000
  '{"event_id": "e1000000-0000-4000-8000-000000000003", "table": "invoices", "op": "insert", "row_id": "c1000000-0000-4000-8000-000000000003", "data": {"series": "BC", "number": 1, "issued_at": "9999-12-31T23:30:00-01:00"}, "client_ts": "2026-01-01T00:00:00Z"}'::jsonb,
  -- 4: ... or into 1 BC
  '{"event_id": "e1000000-0000-4000-8000-000000000004", "table": "invoices", "op": "insert", "row_id": "c1000000-0000-4000-8000-000000000004", "data": {"series": "BC", "number": 1, "issued_at": "0001-01-01T00:00:00+00:30"}, "client_ts": "2026-01-01T00:00:00Z"}'::jsonb,
  -- 5: good, at the edge: the first instant of year 1 in UTC
  '{"event_id": "e1000000-0000-4000-8000-000000000005", "table": "customers", "op": "insert", "row_id": "c1000000-0000-4000-8000-000000000005", "data": {"name": "Year one"}, "client_ts": "0001-01-01T00:00:00Z"}'::jsonb
)) as r \gset

-- TEST: each out-of-range timestamp is rejected with its reason; the good event applies
select is(
  jsonb_path_query_array(:'r'::jsonb, '$.results[*].status'),
  '["rejected", "rejected", "rejected", "rejected", "rejected", "applied"]'::jsonb,
  'out-of-range timestamps are rejected per event and the rest of the batch applies'
);
select is((:'r'::jsonb) #>> '{results,0,reason}', 'invalid_client_ts', 'a client_ts carried into 1 BC');
select is((:'r'::jsonb) #>> '{results,1,reason}', 'invalid_client_ts', 'a client_ts of year 0000');
select is((:'r'::jsonb) #>> '{results,2,reason}', 'invalid_client_ts', 'a client_ts rounded into year 10000');
select is((:'r'::jsonb) #>> '{results,3,reason}', 'invalid_value', 'issued_at carried into year 10000');
select is((:'r'::jsonb) #>> '{results,4,reason}', 'invalid_value', 'issued_at carried into 1 BC');

-- TEST: the checks themselves
reset role;
select is(shopsync.try_timestamptz('0001-01-01T00:30:00+01:00'), null, 'try_timestamptz: 1 BC after the offset is null');
select is(
  shopsync.try_timestamptz('9999-12-31T23:59:59.999999Z'), '9999-12-31 23:59:59.999999+00'::timestamptz,
  'try_timestamptz: the last microsecond of 9999 is kept'
);

-- TEST: nothing with a timestamp before year 1 or from year 10000 was stored
select is(
  (
    select count(*) from public.customers
    where id in ('c1000000-0000-4000-8000-000000000000', 'c1000000-0000-4000-8000-000000000001', 'c1000000-0000-4000-8000-000000000002')
  ),
  0::bigint,
  'rejected events left no row'
);

select * from finish();
rollback;
