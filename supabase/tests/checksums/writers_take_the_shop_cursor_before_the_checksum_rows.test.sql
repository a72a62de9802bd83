-- Two transactions writing one shop's tables in different orders (an order then its items, and
-- items then an order) must queue on the shop's cursor row, never deadlock. That holds while every
-- writer locks the cursor row (the change-log triggers, zz_log_*) before the checksum rows
-- (zzz_checksum_*): statement triggers fire in name order. A checksum trigger named before the log
-- triggers deadlocked the randomized consistent-pull test's writers.
begin;
select plan(2);

select is(
  (
    select count(*)::int from pg_catalog.pg_trigger as t
    inner join pg_catalog.pg_class as c on t.tgrelid = c.oid
    inner join shopsync.synced_tables as st on c.relname = st.table_name
    where not t.tgisinternal and t.tgname like '%checksum%'
  ),
  (select 3 * count(*)::int from shopsync.synced_tables),
  'every synced table has its three checksum triggers'
);

select is_empty(
  $$
    select c.relname, chk.tgname, lg.tgname
    from pg_catalog.pg_trigger as chk
    inner join pg_catalog.pg_class as c on chk.tgrelid = c.oid
    inner join pg_catalog.pg_trigger as lg on lg.tgrelid = chk.tgrelid and lg.tgname like 'zz\_log\_%'
    where not chk.tgisinternal and chk.tgname like '%checksum%'
      and (chk.tgname collate "C") < (lg.tgname collate "C")
  $$,
  'no checksum trigger fires before a change-log trigger of its table'
);

select * from finish();
rollback;
