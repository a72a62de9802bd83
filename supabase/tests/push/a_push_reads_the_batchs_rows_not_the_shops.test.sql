-- The push cliff must not come back (issue 13), checked without timings: the rows a push reads
-- of the shared tables grow with its batch, not with the shop. The state is the cliff's: the
-- statistics were taken when another shop held every row, and the pushing shop has thousands since.
-- A statement that joins the batch to `shop_id = $1` (the old result update of push_record, the
-- old replay lookup of push_claim, the old update of push_write) then reads every one of the shop's
-- rows; one that names the batch's keys (`event_id = any(...)`, `id = any(...)`) reads the batch's.
-- Read from the transaction's own statistics (pg_stat_xact_*: heap tuples returned and fetched,
-- index entries returned, of the table and its indexes). The push's answers in that state are
-- checked too (updates, inserts, a conflict with its server row, replays).
begin;
select plan(5);

create function pg_temp.rows_read(p_table regclass)
returns bigint
language sql
as $$
  select sum(pg_catalog.pg_stat_get_xact_tuples_returned(o.oid) + pg_catalog.pg_stat_get_xact_tuples_fetched(o.oid))::bigint
  from (
    select p_table::oid as oid
    union all
    select i.indexrelid from pg_catalog.pg_index as i where i.indrelid = p_table
  ) as o
$$;

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

-- The pushing shop since: 5,000 results and 5,000 customers, unknown to the statistics.
select tests.create_shop('new', 10) as shop \gset
select tests.create_member(:'shop', 'staff', 'staff@cliff-guard.test');
insert into shopsync.push_results (shop_id, event_id, device_id, result)
select
    :'shop',
    gen_random_uuid(),
    gen_random_uuid(),
    '{"status": "applied"}'
from generate_series(1, 5000);
insert into public.customers (id, shop_id, name)
select
    ('c2000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
    :'shop',
    'Customer ' || g
from generate_series(1, 5000) as g;

-- 10 updates, 10 inserts and an insert of an existing id (a conflict, with its server row).
create temp table batch as
select jsonb_agg(ev order by n) as events from (
    select
        g as n,
        jsonb_build_object(
            'event_id', gen_random_uuid(), 'table', 'customers', 'op', 'update',
            'row_id', 'c2000000-0000-4000-8000-' || lpad(g::text, 12, '0'), 'base_version', 1,
            'data', jsonb_build_object('notes', 'updated')
        ) as ev
    from generate_series(1, 10) as g
    union all
    select
        10 + g,
        jsonb_build_object(
            'event_id', gen_random_uuid(), 'table', 'customers', 'op', 'insert',
            'row_id', gen_random_uuid(), 'data', jsonb_build_object('name', 'New ' || g)
        )
    from generate_series(1, 10) as g
    union all
    select
        30,
        jsonb_build_object(
            'event_id', gen_random_uuid(), 'table', 'customers', 'op', 'insert',
            'row_id', 'c2000000-0000-4000-8000-000000000100', 'data', jsonb_build_object('name', 'Taken')
        )
) as x;
grant select on batch to authenticated;

select
    pg_temp.rows_read('shopsync.push_results') as results_before,
    pg_temp.rows_read('public.customers') as customers_before
\gset
call tests.authenticate_as('staff@cliff-guard.test');
call tests.register_device('d0000000-0000-4000-8000-0000000013a2');
select public.sync_push('d0000000-0000-4000-8000-0000000013a2', (select b.events from batch as b)) as r \gset
call tests.clear_authentication();
select
    pg_temp.rows_read('shopsync.push_results') - :results_before as results_read,
    pg_temp.rows_read('public.customers') - :customers_before as customers_read,
    pg_temp.rows_read('shopsync.push_results') as results_before,
    pg_temp.rows_read('public.customers') as customers_before
\gset

-- The same batch again: every event a replay, answered from its stored result.
call tests.authenticate_as('staff@cliff-guard.test');
select public.sync_push('d0000000-0000-4000-8000-0000000013a2', (select b.events from batch as b)) as replay \gset
call tests.clear_authentication();
select pg_temp.rows_read('shopsync.push_results') - :results_before as results_read_replay \gset

-- TEST: the push did what it says (10 updates, 10 inserts applied; the taken id a conflict), and
-- the replay answered every event as a duplicate
select is(
    (
        select jsonb_agg(distinct s.value) from jsonb_path_query(:'r'::jsonb, '$.results[0 to 19].status') as s (value)
    ) || jsonb_path_query_array(:'r'::jsonb, '$.results[20].status')
    || (
        select jsonb_agg(distinct s.value) from jsonb_path_query(:'replay'::jsonb, '$.results[*].status') as s (value)
    ),
    '["applied", "conflict", "duplicate"]'::jsonb,
    'the push applied and answered as usual; the replay answered duplicates'
);

-- TEST: the conflict carries the server's row
select is((:'r'::jsonb) #>> '{results,20,server_row,name}', 'Customer 100', 'the conflict carries the server row');

-- TEST: the results (claims, stored results, replays) read by the batch's keys, not the shop's
-- 5,000 results
select cmp_ok(:results_read::bigint, '<=', (10 * 21)::bigint, format('push_results rows read by the push: %s', :results_read));
select cmp_ok(
    :results_read_replay::bigint, '<=', (10 * 21)::bigint,
    format('push_results rows read by the replay: %s', :results_read_replay)
);

-- TEST: the written table read by the batch's row ids, not the shop's 5,000 customers
select cmp_ok(:customers_read::bigint, '<=', (10 * 21)::bigint, format('customers rows read by the push: %s', :customers_read));

select * from finish();
rollback;
