-- Threat closed: a write that devices never hear about (a path that skips the change log), or a
-- gap/reordering in a shop's seq that would make a pull skip rows.
begin;
select plan(11);

select last_seq as s0 from shopsync.shop_cursor
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset
select last_seq as b0 from shopsync.shop_cursor
where shop_id = 'bbbbbbbb-0000-4000-8000-000000000000' \gset

call tests.authenticate_as('staff@shop-a.test');

-- direct writes under RLS: a two-row insert, an update of one column, a five-row update
insert into public.customers (id, shop_id, name) values
('c0000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000000', 'One'),
('c0000000-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-000000000000', 'Two');
update public.customers set email = 'one@example.test'
where id = 'c0000000-0000-4000-8000-000000000001';
update public.products set active = false
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and sku in ('COF-250', 'TEA-100', 'MUG-01', 'CUP-PAPER', 'GIFT-10');

-- writes through push
call tests.register_device('d0000000-0000-4000-8000-0000000000a2');
select public.sync_push('d0000000-0000-4000-8000-0000000000a2', '[
  {"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "insert",
   "row_id": "c0000000-0000-4000-8000-000000000003", "data": {"name": "Three"}},
  {"event_id": "e0000000-0000-4000-8000-000000000002", "table": "customers", "op": "update",
   "row_id": "c0000000-0000-4000-8000-000000000002", "base_version": 1, "data": {"phone": "123", "notes": "n"}},
  {"event_id": "e0000000-0000-4000-8000-000000000003", "table": "customers", "op": "delete",
   "row_id": "c0000000-0000-4000-8000-000000000003", "base_version": 1}
]') as r \gset

reset role;

-- TEST: every write produced one entry, numbered right after the previous last seq
select is(
  (
    select count(*)::int from shopsync.change_log
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and seq > :s0
  ),
  2 + 1 + 5 + 3,
  'two inserts, one update, five product updates and three pushed events make eleven entries'
);
select results_eq(
  format($$select array_agg(seq order by seq) from shopsync.change_log where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and seq > %s$$, :s0),
  format($$select array_agg(g::bigint order by g) from generate_series(%s, %s) as g$$, :s0 + 1, :s0 + 11),
  'the new entries take seqs last_seq+1 .. last_seq+11, with no gap'
);
select is(
  (
    select last_seq from shopsync.shop_cursor
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'
  ),
  (:s0 + 11)::bigint,
  'the shop counter advanced by eleven'
);
select is(
  ((:'r'::jsonb) ->> 'cursor')::bigint, (:s0 + 11)::bigint,
  'the push answers the shop''s cursor after its writes'
);
select is(
  (
    select last_seq from shopsync.shop_cursor
    where shop_id = 'bbbbbbbb-0000-4000-8000-000000000000'
  ),
  :b0::bigint,
  'shop B''s counter did not move'
);

-- TEST: entries follow the order of the writes
select results_eq(
  format($$select table_name, row_id::text, op, version from shopsync.change_log
           where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and seq > %s and table_name = 'customers' order by seq$$, :s0),
  $$values
    ('customers'::text, 'c0000000-0000-4000-8000-000000000001'::text, 'insert'::text, 1::bigint),
    ('customers', 'c0000000-0000-4000-8000-000000000002', 'insert', 1),
    ('customers', 'c0000000-0000-4000-8000-000000000001', 'update', 2),
    ('customers', 'c0000000-0000-4000-8000-000000000003', 'insert', 1),
    ('customers', 'c0000000-0000-4000-8000-000000000002', 'update', 2),
    ('customers', 'c0000000-0000-4000-8000-000000000003', 'delete', 2)$$,
  'customer entries are in write order with their versions and ops'
);

-- TEST: changed_columns names exactly the changed client columns
select is(
  (
    select changed_columns from shopsync.change_log
    where row_id = 'c0000000-0000-4000-8000-000000000001' and version = 2
  ),
  array['email'],
  'a direct update records changed_columns {email}'
);
select is(
  (
    select changed_columns from shopsync.change_log
    where row_id = 'c0000000-0000-4000-8000-000000000002' and version = 2
  ),
  array['notes', 'phone'],
  'a pushed update records changed_columns {notes, phone}'
);
select is(
  (
    select count(*)::int from shopsync.change_log
    where
      shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and seq > :s0 and table_name = 'products'
      and changed_columns = array['active'] and op = 'update'
  ),
  5,
  'a five-row update logs five entries with changed_columns {active}'
);

-- TEST: entries carry the row as written and the device that wrote it
select results_eq(
  $$select row ->> 'email', device_id from shopsync.change_log where row_id = 'c0000000-0000-4000-8000-000000000001' and version = 2$$,
  $$values ('one@example.test'::text, null::uuid)$$,
  'a direct write logs the new row and no device'
);
select results_eq(
  $$select row ->> 'phone', device_id from shopsync.change_log where row_id = 'c0000000-0000-4000-8000-000000000002' and version = 2$$,
  $$values ('123'::text, 'd0000000-0000-4000-8000-0000000000a2'::uuid)$$,
  'a pushed write logs the new row and the device'
);

select * from finish();
rollback;
