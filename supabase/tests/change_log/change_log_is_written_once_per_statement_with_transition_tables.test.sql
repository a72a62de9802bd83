-- Threat closed: a change-log writer that runs per row (slow, and a per-row counter update inside
-- a large transaction degrades badly), or a synced table missing one of its guard triggers.
begin;
select plan(5);

-- TEST: every synced table has its four triggers
select is_empty(
  $$
    select st.table_name || ' lacks ' || t.name
    from shopsync.synced_tables as st
    cross join (values ('zz_stamp'), ('zz_log_insert'), ('zz_log_update'), ('zz_no_truncate')) as t (name)
    where not exists (
      select 1 from pg_trigger as tg
      where tg.tgrelid = ('public.' || quote_ident(st.table_name))::regclass and tg.tgname = t.name and tg.tgenabled = 'O'
    )
  $$,
  'every synced table has stamp, log and truncate triggers, enabled'
);

-- TEST: the change-log triggers are statement-level with transition tables
select is_empty(
  $$
    select tg.tgrelid::regclass::text || '.' || tg.tgname
    from pg_trigger as tg
    where tg.tgname in ('zz_log_insert', 'zz_log_update')
      and ((tg.tgtype & 1) <> 0 or tg.tgnewtable is null)
  $$,
  'zz_log_insert and zz_log_update are FOR EACH STATEMENT with a new-rows transition table'
);
select is_empty(
  $$
    select tg.tgrelid::regclass::text from pg_trigger as tg
    where tg.tgname = 'zz_log_update' and tg.tgoldtable is null
  $$,
  'zz_log_update also sees the old rows'
);
select ok(
  (
    select count(*) from pg_trigger
    where tgname = 'zz_log_insert'
  ) >= 5,
  'the checks above cover the five synced tables'
);

-- TEST: a 200-row insert in one statement takes 200 consecutive seqs
select last_seq as s0 from shopsync.shop_cursor
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset
insert into public.customers (id, shop_id, name)
select
  gen_random_uuid(),
  'aaaaaaaa-0000-4000-8000-000000000000',
  'Bulk ' || g
from generate_series(1, 200) as g;
select results_eq(
  format($$select min(seq), max(seq), count(*) from shopsync.change_log
           where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and seq > %s$$, :s0),
  format('values (%s::bigint, %s::bigint, 200::bigint)', :s0 + 1, :s0 + 200),
  'one statement of 200 rows logs 200 entries with consecutive seqs'
);

select * from finish();
rollback;
