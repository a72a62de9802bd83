-- Threat closed: tills sharing one login starved each other of pulls. Live sync makes every
-- subscribed till pull once per change, and pulls were metered per user: every till on a login
-- shared one till's budget, so a busy shop's tills answered PT429 until the window ended. A user's
-- pull budget is now pull_calls_per_minute per active device of that user: a till alone on its
-- login still has one till's budget, and a revoked device adds nothing.
begin;
select plan(7);

update shopsync.config set value = '2' where key = 'pull_calls_per_minute';
-- Windows are per caller and last a minute from their first call: start from none (rolled back).
delete from shopsync.call_rate;
-- Staff's earlier devices out of the count (rolled back).
update public.devices set revoked_at = now()
where user_id = (select u.id from auth.users as u where u.email = 'staff@shop-a.test') and revoked_at is null;

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000e1', 'till 1');

-- TEST: one till on the login: one till's budget
select lives_ok(
  $$select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', 0, 1, 0);
    select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', 0, 1, 0)$$,
  'a till alone on its login makes the configured two pulls'
);
select throws_ok(
  $$select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', 0, 1, 0)$$,
  'PT429', null, 'and its third pull in the window is refused, as before'
);

-- TEST: three tills on the login: three tills' budget in the same window
call tests.register_device('d0000000-0000-4000-8000-0000000000e2', 'till 2');
call tests.register_device('d0000000-0000-4000-8000-0000000000e3', 'till 3');
select lives_ok(
  $$select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e2', 0, 1, 0);
    select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e3', 0, 1, 0);
    select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', 0, 1, 0)$$,
  'with three tills on the login, pulls go on past one till''s budget'
);

-- TEST: a revoked device adds nothing
reset role;
select is(
  (select c.calls::int from shopsync.call_rate as c
   where c.user_id = (select u.id from auth.users as u where u.email = 'staff@shop-a.test') and c.kind = 'pull'),
  5, 'five pulls counted in the window'
);
update public.devices set revoked_at = now() where id = 'd0000000-0000-4000-8000-0000000000e3';
call tests.authenticate_as('staff@shop-a.test');
select throws_ok(
  $$select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', 0, 1, 0)$$,
  'PT429', null, 'with one of the three tills revoked the budget is two tills'' (four): the sixth pull is refused'
);

-- TEST: the budget of three tills ends at six
reset role;
update public.devices set revoked_at = null where id = 'd0000000-0000-4000-8000-0000000000e3';
call tests.authenticate_as('staff@shop-a.test');
select lives_ok(
  $$select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e1', 0, 1, 0)$$,
  'with the three tills active again, the sixth pull passes'
);
select throws_ok(
  $$select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000e2', 0, 1, 0)$$,
  'PT429', null, 'and the seventh is refused'
);

select * from finish();
rollback;
