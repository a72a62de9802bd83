-- Threat closed: retention that exists but never runs.
-- Skips where pg_cron is not installed (the Postgres 17 lane's build has none; the retention
-- migration then schedules nothing). The queries are text, run only where cron.job exists.
begin;
select plan(3);

select skip('pg_cron is not installed in this Postgres build (the Postgres 17 test lane); hosted Supabase and the local stack have it', 3)
where to_regclass('cron.job') is null;

-- TEST: the migration scheduled the job once, daily, calling run_retention
select results_eq(
  $$select count(*)::int from cron.job where jobname = 'shopsync-retention'$$,
  array[1],
  'one pg_cron job named shopsync-retention'
)
where to_regclass('cron.job') is not null;
select results_eq(
  $$select schedule ~ '^\d+ \d+ \* \* \*$' from cron.job where jobname = 'shopsync-retention'$$,
  array[true],
  'it runs once a day'
)
where to_regclass('cron.job') is not null;
select results_eq(
  $$select command from cron.job where jobname = 'shopsync-retention'$$,
  array['select shopsync.run_retention()'],
  'it calls shopsync.run_retention() with the configured windows'
)
where to_regclass('cron.job') is not null;

select * from finish();
rollback;
