-- Threat closed: a read-only member changing shop data through sync_push or direct table writes.
begin;
select plan(7);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0001') as a_c1 \gset
select name as a_c1_name from public.customers
where id = :'a_c1' \gset

-- The owner registers the viewer's tablet (viewers take no seats themselves).
call tests.authenticate_as('owner@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000a3', 'tablet');
call tests.authenticate_as('viewer@shop-a.test');

-- TEST: a viewer uses a device registered for them and pulls the shop
select is(
  public.sync_register_device('d0000000-0000-4000-8000-0000000000a3', 'tablet') ->> 'role',
  'viewer',
  'a viewer can use a device registered for them'
);
select ok(
  jsonb_array_length(public.sync_pull('d0000000-0000-4000-8000-0000000000a3', 0) -> 'changes') >= 8,
  'a viewer pulls the shop''s changes'
);
select ok((select count(*) from public.customers) > 0, 'a viewer reads customers');

-- TEST: a viewer cannot push, nor write directly
select throws_ok(
  format($$select public.sync_push('d0000000-0000-4000-8000-0000000000a3', '[{"event_id": "e0000000-0000-4000-8000-000000000001", "table": "customers", "op": "update", "row_id": "%s", "base_version": 1, "data": {"name": "x"}}]')$$, :'a_c1'),
  'PT403', 'viewers can pull but not push', 'a viewer cannot push'
);
select throws_ok(
  $$insert into public.customers (id, shop_id, name) values ('c0000000-0000-4000-8000-000000000003', 'aaaaaaaa-0000-4000-8000-000000000000', 'x')$$,
  '42501', null, 'a viewer cannot insert directly'
);
update public.customers set name = 'changed by viewer'
where id = :'a_c1';

reset role;
select is(
  (
    select name from public.customers
    where id = :'a_c1'
  ),
  :'a_c1_name',
  'a viewer''s direct update changes nothing'
);
select is(
  (
    select count(*)::int from shopsync.push_results
    where device_id = 'd0000000-0000-4000-8000-0000000000a3'
  ),
  0,
  'the refused push left no stored result'
);

select * from finish();
rollback;
