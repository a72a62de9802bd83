-- Threat closed: an ever-growing change log and tombstone pile, or retention that loses a change a
-- device still needs (a live row's latest entry) without telling devices to reset.
begin;
select plan(11);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0001') as c1 \gset
select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0002') as c2 \gset
select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/MUG-01') as mug \gset

select version + 2 as c1_last from public.customers
where id = :'c1' \gset

-- c1 updated twice (two superseded entries), c2 deleted, the mug deleted but referenced by a live order item
update public.customers set notes = 'v2'
where id = :'c1';
update public.customers set notes = 'v3'
where id = :'c1';
update public.customers set deleted_at = now()
where id = :'c2';
insert into public.orders (id, shop_id, total) values ('f0000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000000', 12);
insert into public.order_items (id, shop_id, order_id, product_id, quantity, unit_price)
values ('10000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000000', 'f0000000-0000-4000-8000-000000000001', :'mug', 1, 12);
update public.products set deleted_at = now()
where id = :'mug';
-- age everything so the retention windows have passed (triggers off: they would keep deleted_at)
set local session_replication_role = replica;
update shopsync.change_log set changed_at = changed_at - interval '1 day';
update public.customers set deleted_at = deleted_at - interval '1 day'
where deleted_at is not null;
update public.products set deleted_at = deleted_at - interval '1 day'
where deleted_at is not null;
set local session_replication_role = origin;
select max(seq) as c2_delete_seq from shopsync.change_log
where row_id = :'c2' \gset
select max(seq) as a_last from shopsync.change_log
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset
-- shop C: a live row with history and no tombstone
select tests.create_shop('Shop C') as shop_c \gset
insert into public.customers (id, shop_id, name) values ('c0000000-0000-4000-8000-0000000000c1', :'shop_c', 'C1');
update public.customers set notes = 'v2'
where id = 'c0000000-0000-4000-8000-0000000000c1';
update shopsync.change_log set changed_at = changed_at - interval '1 day'
where shop_id = :'shop_c';

select lives_ok(
  $$select shopsync.run_retention('0 seconds', '0 seconds')$$,
  'retention runs (even with a deleted product still referenced by a live order item)'
);

-- TEST: superseded entries are dropped; each live row keeps its latest entry
select results_eq(
  format('select version from shopsync.change_log where row_id = %L', :'c1'),
  format('values (%s::bigint)', :c1_last),
  'only the latest entry of an updated row remains'
);
select is(
  (
    select count(*)::int from shopsync.change_log as cl
    where exists (
      select 1
      from shopsync.change_log as n
      where
        n.shop_id = cl.shop_id and n.table_name = cl.table_name
        and n.row_id = cl.row_id and n.version > cl.version
    )
  ),
  0, 'no superseded entry remains'
);
select is(
  (
    select count(*)::int
    from public.customers
    where
      deleted_at is null and shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'
      and id not in (select cl.row_id from shopsync.change_log as cl)
  ),
  0, 'every live customer still has an entry to pull'
);

-- TEST: old tombstones and their entries are purged
select is((
  select count(*)::int from public.customers
  where id = :'c2'
), 0, 'the old tombstone is purged');
select is((
  select count(*)::int from shopsync.change_log
  where row_id = :'c2'
), 0, 'its entries are gone');

-- TEST: a tombstone still referenced by a live row is kept (purging it would break the reference)
select isnt((
  select deleted_at from public.products
  where id = :'mug'
), null, 'the referenced deleted product is kept');
select is((
  select count(*)::int from public.order_items
  where id = '10000000-0000-4000-8000-000000000001'
), 1, 'the live order item is intact');

-- TEST: the floor rises above the purged entries, per shop
select ok(
  (
    select floor_seq from shopsync.shop_cursor
    where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'
  ) >= :c2_delete_seq,
  'shop A''s floor is at least the purged delete''s seq'
);
select is(
  (
    select floor_seq from shopsync.shop_cursor
    where shop_id = :'shop_c'
  ),
  0::bigint, 'a shop with no purged tombstone keeps its floor (dropping superseded entries does not raise it)'
);

-- TEST: a device behind the floor is told to reset
call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1');
select is(
  public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 1) -> 'reset_required', 'true'::jsonb,
  'a device whose cursor is below the new floor must reset'
);

select * from finish();
rollback;
