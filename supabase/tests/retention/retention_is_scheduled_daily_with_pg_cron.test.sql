-- Threat closed: retention that exists but never runs.
begin;
select plan(3);

-- TEST: the migration scheduled the job once, daily, calling run_retention
select is(
  (
    select count(*)::int from cron.job
    where jobname = 'shopsync-retention'
  ), 1,
  'one pg_cron job named shopsync-retention'
);
select matches(
  (
    select schedule from cron.job
    where jobname = 'shopsync-retention'
  ),
  '^\d+ \d+ \* \* \*$',
  'it runs once a day'
);
select is(
  (
    select command from cron.job
    where jobname = 'shopsync-retention'
  ),
  'select shopsync.run_retention()',
  'it calls shopsync.run_retention() with the configured windows'
);

select * from finish();
rollback;
