-- Behaviour: a transaction that changes a shop's synced rows in several statements sends one
-- Realtime Broadcast for that shop, on its private topic, carrying the shop's cursor at commit and
-- no row data; a transaction that touches two shops sends one for each. (Deferred to commit: set
-- constraints ... immediate fires the queued events here, inside the test's transaction.)
begin;
select plan(9);

create temporary table sent_before on commit drop as select id from realtime.messages;

insert into public.customers (id, shop_id, name) values
('c1000000-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000000', 'one');
insert into public.customers (id, shop_id, name) values
('c1000000-0000-4000-8000-000000000002', 'aaaaaaaa-0000-4000-8000-000000000000', 'two');
update public.customers set name = 'two!' where id = 'c1000000-0000-4000-8000-000000000002';
insert into public.customers (id, shop_id, name) values
('c1000000-0000-4000-8000-000000000003', 'bbbbbbbb-0000-4000-8000-000000000000', 'b');

-- TEST: nothing is sent before commit
select is_empty(
  $$select 1 from realtime.messages where id not in (select s.id from sent_before as s)$$,
  'nothing is broadcast before the transaction commits'
);

set constraints shopsync.shop_cursor_broadcast immediate;

-- TEST: one message per shop
select is(
  (select count(*)::int from realtime.messages where id not in (select s.id from sent_before as s)
   and topic = 'shop:aaaaaaaa-0000-4000-8000-000000000000'),
  1, 'three statements on shop A: one broadcast'
);
select is(
  (select count(*)::int from realtime.messages where id not in (select s.id from sent_before as s)
   and topic = 'shop:bbbbbbbb-0000-4000-8000-000000000000'),
  1, 'one statement on shop B: one broadcast'
);

-- TEST: it carries the cursor at commit, private, event changed, no row data
select is(
  (select m.payload ->> 'cursor' from realtime.messages as m
   where m.id not in (select s.id from sent_before as s) and m.topic = 'shop:aaaaaaaa-0000-4000-8000-000000000000'),
  (select c.last_seq::text from shopsync.shop_cursor as c where c.shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'),
  'the broadcast carries the shop''s last_seq after all three statements'
);
select is(
  (select array_agg(k order by k) from realtime.messages as m, jsonb_object_keys(m.payload) as k
   where m.id not in (select s.id from sent_before as s) and m.topic = 'shop:aaaaaaaa-0000-4000-8000-000000000000'),
  array['cursor', 'id'],
  'the payload is the cursor and realtime.send''s id: no row data'
);
select ok(
  (select bool_and(m.private and m.event = 'changed' and m.extension = 'broadcast') from realtime.messages as m
   where m.id not in (select s.id from sent_before as s)),
  'private broadcasts, event changed'
);

-- TEST: a change to the floor only (retention) sends nothing
update shopsync.shop_cursor set floor_seq = floor_seq where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';
select is(
  (select count(*)::int from realtime.messages where id not in (select s.id from sent_before as s)),
  2, 'a cursor row update that leaves last_seq alone broadcasts nothing'
);

-- TEST: events fired before commit (set constraints ... immediate) do not swallow later changes
insert into public.customers (id, shop_id, name) values
('c1000000-0000-4000-8000-000000000004', 'aaaaaaaa-0000-4000-8000-000000000000', 'later');
select is(
  (select count(*)::int from realtime.messages where id not in (select s.id from sent_before as s)
   and topic = 'shop:aaaaaaaa-0000-4000-8000-000000000000'),
  2, 'a change after the events fired sends once more'
);
select is(
  (select max((m.payload ->> 'cursor')::bigint) from realtime.messages as m
   where m.id not in (select s.id from sent_before as s) and m.topic = 'shop:aaaaaaaa-0000-4000-8000-000000000000'),
  (select c.last_seq from shopsync.shop_cursor as c where c.shop_id = 'aaaaaaaa-0000-4000-8000-000000000000'),
  'with the newer cursor'
);

select * from finish();
rollback;
