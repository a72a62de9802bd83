-- Threat closed: a device showing part of a server transaction (an order without its items) or
-- a mix left by retention compaction. sync_pull_v2 ends a page where a transaction ends, says
-- when it could not (one transaction bigger than the page), and says consistent = false until a
-- device that pulls across dropped entries has reached the tip of that retention run.
-- (pgTAP runs in one transaction: the entries' transaction ids are set by hand.)
begin;
select plan(13);

select last_seq as s0 from shopsync.shop_cursor
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset
insert into public.customers (id, shop_id, name)
select
  gen_random_uuid(),
  'aaaaaaaa-0000-4000-8000-000000000000',
  'Tx ' || g
from generate_series(1, 3) as g;
-- Entry 1 is one transaction, entries 2 and 3 another.
update shopsync.change_log
set xact = case when seq = :s0 + 1 then '1001'::xid8 else '1002'::xid8 end
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and seq > :s0;

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000f1');

-- TEST: a page of 2 entries ends after entry 1: entry 2's transaction goes on in entry 3
select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000f1', :s0, 2) as p1 \gset
select is(json_array_length((:'p1'::json) -> 'changes'), 1, 'the page stops where the first transaction ends');
select is(((:'p1'::json) ->> 'cursor')::bigint, (:s0 + 1)::bigint, '... its cursor is that entry''s');
select is((:'p1'::json) ->> 'consistent', 'true', '... and it is a consistent point');

-- TEST: a transaction bigger than the page comes in pieces that say so
select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000f1', :s0 + 1, 1) as p2 \gset
select is(((:'p2'::json) ->> 'cursor')::bigint, (:s0 + 2)::bigint, 'a page of 1 inside a transaction holds 1 entry');
select is((:'p2'::json) ->> 'consistent', 'false', '... and is not a consistent point');
select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000f1', :s0 + 2, 1, :s0 + 1) as p3 \gset
select is((:'p3'::json) ->> 'consistent', 'true', 'the page that ends the transaction is');

-- TEST: the page is columnar: each table's columns once, each entry's values in that order
select is(
  json_array_length((:'p1'::json) #> '{changes,0,5}'), json_array_length((:'p1'::json) #> '{tables,customers}'),
  'an entry holds one value per column of its table'
);
select is(
  (:'p1'::json) #>> array['changes', '0', (
    select (c.i - 1)::text
    from json_array_elements_text((:'p1'::json) #> '{tables,customers}') with ordinality as c (name, i)
    where c.name = 'name'
  )]::text[] is not null, true,
  '... found by the column''s position'
);

-- TEST: the page names every column of the table, in jsonb's key order (by length, then bytes)
select is(
  array(select json_array_elements_text((:'p1'::json) #> '{tables,customers}')),
  (
    select array_agg(a.attname::text order by octet_length(a.attname::text), convert_to(a.attname::text, 'UTF8'))
    from pg_catalog.pg_attribute as a
    where a.attrelid = 'public.customers'::regclass and a.attnum > 0 and not a.attisdropped
  ),
  '... every column of the table, in the order the entry''s values come in'
);

-- TEST: across entries retention dropped, nothing is consistent before the tip of that run
reset role;
insert into shopsync.pull_compaction (shop_id, max_dropped_seq, consistent_seq)
values ('aaaaaaaa-0000-4000-8000-000000000000', :s0 + 1, :s0 + 3);
call tests.authenticate_as('staff@shop-a.test');
select is(
  public.sync_pull_v2('d0000000-0000-4000-8000-0000000000f1', :s0, 2) ->> 'consistent', 'false',
  'a transaction''s end below the run''s tip is not consistent for a device from below the drop'
);
select is(
  public.sync_pull_v2('d0000000-0000-4000-8000-0000000000f1', :s0 + 1, 5, :s0) ->> 'consistent', 'true',
  '... the tip of the run is'
);
select is(
  public.sync_pull_v2('d0000000-0000-4000-8000-0000000000f1', :s0 + 1, 2) ->> 'consistent', 'true',
  'a device already past the dropped entries is not held back'
);

-- TEST: v1 keeps its semantics: pages cut at the row count
select is(
  jsonb_array_length(public.sync_pull('d0000000-0000-4000-8000-0000000000f1', :s0, 2) -> 'changes'), 2,
  'sync_pull (v1) still cuts at the row count'
);

select * from finish();
rollback;
