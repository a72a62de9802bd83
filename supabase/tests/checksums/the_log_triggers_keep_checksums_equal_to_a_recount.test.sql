-- Threat closed: a server checksum that drifts from the rows it stands for (a write path the
-- triggers miss, a soft delete or purge counted wrong), which would make every device "repair" a
-- table that is right, or miss one that is wrong. After each kind of write the kept checksums
-- equal a recount from the rows.
begin;
select plan(9);

-- A recount of every (shop, table) from the rows, as the backfill computes it.
create function pg_temp.recount()
returns table (shop_id uuid, table_name text, row_count bigint, checksum bigint)
language plpgsql
set timezone to 'UTC'
set datestyle to 'ISO, YMD'
set extra_float_digits to 1
as $$
declare
  f record;
begin
  for f in select * from shopsync.checksum_forms loop
    return query execute format(
      'select r.shop_id, %L::text, count(*), shopsync.wrap64(sum(%s)) from public.%I as r'
      ' where r.deleted_at is null group by r.shop_id', f.table_name, f.hash_sql, f.table_name);
  end loop;
end;
$$;

create function pg_temp.drift()
returns setof text
language sql
as $$
  (select k.shop_id || '/' || k.table_name || ' kept ' || k.row_count || ' ' || k.checksum
   from shopsync.table_checksums as k where k.row_count <> 0 or k.checksum <> 0
   except
   select r.shop_id || '/' || r.table_name || ' kept ' || r.row_count || ' ' || r.checksum from pg_temp.recount() as r)
  union all
  (select r.shop_id || '/' || r.table_name || ' counted ' || r.row_count || ' ' || r.checksum from pg_temp.recount() as r
   except
   select k.shop_id || '/' || k.table_name || ' counted ' || k.row_count || ' ' || k.checksum
   from shopsync.table_checksums as k)
$$;

-- TEST: the backfill (and the seed's writes) match a recount.
select is_empty('select * from pg_temp.drift()', 'seeded checksums equal a recount');

-- TEST: inserts in two shops by one statement.
select tests.create_shop('Shop K') as shop_k \gset
insert into public.customers (id, shop_id, name, notes) values
('c0000000-0000-4000-8000-0000000000a1', 'aaaaaaaa-0000-4000-8000-000000000000', 'Zoë', 'ü|1:x'),
('c0000000-0000-4000-8000-0000000000a2', :'shop_k', 'Kim', null),
('c0000000-0000-4000-8000-0000000000a3', :'shop_k', 'Lee', '');
insert into public.shop_settings (id, shop_id, key, value) values
('c0000000-0000-4000-8000-0000000000b1', :'shop_k', 'receipt', '{"footer": "Danke", "copies": 2.50}');
select is_empty('select * from pg_temp.drift()', 'inserts (two shops, one statement) keep the checksums');
select is(
  (select k.row_count from shopsync.table_checksums as k where k.shop_id = :'shop_k' and k.table_name = 'customers'),
  2::bigint, 'the new shop counts its two live customers'
);

-- TEST: updates (one row, many rows, numeric at scale).
update public.customers set notes = 'changed' where id = 'c0000000-0000-4000-8000-0000000000a2';
update public.products set price = price + 0.10 where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';
select is_empty('select * from pg_temp.drift()', 'updates keep the checksums');

-- TEST: a soft delete takes the row out; a restore puts it back.
update public.customers set deleted_at = now() where id = 'c0000000-0000-4000-8000-0000000000a3';
select is(
  (select k.row_count from shopsync.table_checksums as k where k.shop_id = :'shop_k' and k.table_name = 'customers'),
  1::bigint, 'a tombstone does not count'
);
select is_empty('select * from pg_temp.drift()', 'a soft delete keeps the checksums');
update public.customers set deleted_at = null where id = 'c0000000-0000-4000-8000-0000000000a3';
update public.customers set deleted_at = now() where id = 'c0000000-0000-4000-8000-0000000000a3';
select is_empty('select * from pg_temp.drift()', 'a restore and a second delete keep the checksums');

-- TEST: the retention job's purge of tombstones (hard deletes) changes nothing it should not.
set local session_replication_role = replica;
update public.customers set deleted_at = deleted_at - interval '400 days' where id = 'c0000000-0000-4000-8000-0000000000a3';
set local session_replication_role = origin;
select shopsync.run_retention(interval '1 day', interval '1 day') is not null as ran \gset
select is_empty(
  $$select 1 from public.customers where id = 'c0000000-0000-4000-8000-0000000000a3'$$, 'the tombstone was purged'
);
-- (a live row hard-deleted the way the purge deletes is subtracted too)
set local shopsync.purging = 'on';
delete from public.customers where id = 'c0000000-0000-4000-8000-0000000000a2';
set local shopsync.purging = 'off';
select is_empty('select * from pg_temp.drift()', 'purges keep the checksums');

select * from finish();
rollback;
