-- Threat: someone who is not (or no longer) a member of a shop hears when its data changes, or
-- any signed-in user subscribes to every shop. Realtime Authorization lets a user join a private
-- channel when the realtime.messages policies let them select a probe row of the topic, with
-- realtime.topic() set to it; this test runs that probe as Realtime does.
begin;
select plan(7);

insert into realtime.messages (id, topic, extension) values
('f0000000-0000-4000-8000-00000000000a', 'shop:aaaaaaaa-0000-4000-8000-000000000000', 'broadcast'),
('f0000000-0000-4000-8000-00000000000b', 'shop:bbbbbbbb-0000-4000-8000-000000000000', 'broadcast'),
('f0000000-0000-4000-8000-00000000000c', 'shop:aaaaaaaa-0000-4000-8000-000000000000', 'presence');

create function pg_temp.can_join(p_topic text, p_extension text default 'broadcast') returns boolean
language plpgsql as $$
begin
  perform set_config('realtime.topic', p_topic, true);
  return exists (select 1 from realtime.messages as m where m.topic = p_topic and m.extension = p_extension);
end;
$$;

-- TEST: a member reads their shop's topic, and no other
call tests.authenticate_as('staff@shop-a.test');
select ok(pg_temp.can_join('shop:aaaaaaaa-0000-4000-8000-000000000000'), 'staff of shop A may join shop:A');
select ok(not pg_temp.can_join('shop:bbbbbbbb-0000-4000-8000-000000000000'), 'staff of shop A may not join shop:B');
select ok(
  not pg_temp.can_join('shop:aaaaaaaa-0000-4000-8000-000000000000', 'presence'),
  'the policy grants broadcast only, not presence'
);

-- TEST: a token naming another shop does not help
call tests.authenticate_as('staff@shop-b.test', 'aaaaaaaa-0000-4000-8000-000000000000');
select ok(not pg_temp.can_join('shop:aaaaaaaa-0000-4000-8000-000000000000'), 'a token claiming shop A does not make a shop B member one');

-- TEST: anon never
call tests.authenticate_as_anon();
select ok(not pg_temp.can_join('shop:aaaaaaaa-0000-4000-8000-000000000000'), 'anon may not join');

-- TEST: a revoked member loses it with the same token
call tests.clear_authentication();
update public.shop_members set revoked_at = now()
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' and user_id = 'a0000000-0000-4000-8000-000000000002';
call tests.authenticate_as_claims('{"sub": "a0000000-0000-4000-8000-000000000002", "role": "authenticated", "app_metadata": {"shop_id": "aaaaaaaa-0000-4000-8000-000000000000"}}');
select ok(not pg_temp.can_join('shop:aaaaaaaa-0000-4000-8000-000000000000'), 'a revoked member may not join');

-- TEST: no client may broadcast on a shop's topic
call tests.authenticate_as('owner@shop-a.test');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload) values ('shop:aaaaaaaa-0000-4000-8000-000000000000', 'broadcast', 'changed', '{"cursor": 1}')$$,
  '42501', null, 'even an owner cannot send on the shop''s topic (no insert policy)'
);

select * from finish();
rollback;
