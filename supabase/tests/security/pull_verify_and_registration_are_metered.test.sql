-- Threat closed: a member hammering sync_pull, verify_invoice_chain (seconds on a long series) or
-- sync_register_device, which were not metered: past the configured calls per user and minute each
-- answers PT429 rate_limited, and the limit is per user.
begin;
select plan(7);

update shopsync.config set value = '2'
where key in ('pull_calls_per_minute', 'verify_calls_per_minute', 'register_calls_per_minute');
-- Windows are per caller and last a minute from their first call: start from none (rolled back).
delete from shopsync.call_rate;

call tests.authenticate_as('staff@shop-a.test');
-- TEST: registration is metered
-- (tests.register_device also sends the device's secret from then on, as a till would)
select lives_ok($$call tests.register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1')$$, 'first registration passes');
select lives_ok($$select public.sync_register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1')$$, 'second registration passes');
select throws_ok($$select public.sync_register_device('d0000000-0000-4000-8000-0000000000d1', 'till 1')$$,
  'PT429', null, 'the third registration in a minute is refused with PT429');

-- TEST: pull is metered
select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0, 1) is not null as p1 \gset
select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0, 1) is not null as p2 \gset
select throws_ok($$select public.sync_pull('d0000000-0000-4000-8000-0000000000d1', 0, 1)$$,
  'PT429', null, 'the third pull in a minute is refused with PT429');

-- TEST: verify_invoice_chain is metered
select public.verify_invoice_chain('S-1') is not null as v1 \gset
select public.verify_invoice_chain('S-1') is not null as v2 \gset
select throws_ok($$select public.verify_invoice_chain('S-1')$$,
  'PT429', null, 'the third chain verification in a minute is refused with PT429');

-- TEST: the limits are per user
call tests.authenticate_as('owner@shop-a.test');
select lives_ok($$select public.verify_invoice_chain('S-1')$$, 'another user of the shop still verifies');
select lives_ok($$select public.sync_register_device('d0000000-0000-4000-8000-0000000000d2', 'till 2')$$,
  'another user of the shop still registers');

select * from finish();
rollback;
