-- Threat closed: deletes, restores, membership and licence changes nobody can trace afterwards;
-- and an audit log the audited could read or rewrite.
begin;
select plan(8);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0001') as c1 \gset
select coalesce(max(id), 0) as a0 from shopsync.audit_log \gset
select version as v from public.customers
where id = :'c1' \gset
select max_devices as max_dev from public.licenses
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000' \gset

-- staff deletes a customer through push; the owner restores it directly; the owner adds and revokes a member
call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000d1');
select public.sync_push('d0000000-0000-4000-8000-0000000000d1', jsonb_build_array(jsonb_build_object(
  'event_id', 'e0000000-0000-4000-8000-000000000001', 'table', 'customers', 'op', 'delete', 'row_id', :'c1', 'base_version', :v
))) as p \gset
-- TEST: the audit log is private
select throws_ok('select * from shopsync.audit_log', '42501', null, 'members cannot read the audit log');

call tests.authenticate_as('owner@shop-a.test');
update public.customers set deleted_at = null
where id = :'c1';
insert into public.shop_members (shop_id, user_id, role) values ('aaaaaaaa-0000-4000-8000-000000000000', 'b0000000-0000-4000-8000-000000000002', 'viewer');
update public.shop_members set revoked_at = now()
where user_id = 'b0000000-0000-4000-8000-000000000002' and shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';
call tests.clear_authentication();  -- a change by the operator, outside any user session
update public.licenses set max_devices = max_devices + 10
where shop_id = 'aaaaaaaa-0000-4000-8000-000000000000';

-- TEST: each event is recorded, in order, with its actor
select results_eq(
  format($$select action, table_name, row_id::text, actor::text from shopsync.audit_log where id > %s order by id$$, :a0),
  format($$values
    ('delete'::text, 'customers'::text, %L::text, 'a0000000-0000-4000-8000-000000000002'::text),
    ('restore', 'customers', %L, 'a0000000-0000-4000-8000-000000000001'),
    ('insert', 'shop_members', 'b0000000-0000-4000-8000-000000000002', 'a0000000-0000-4000-8000-000000000001'),
    ('update', 'shop_members', 'b0000000-0000-4000-8000-000000000002', 'a0000000-0000-4000-8000-000000000001'),
    ('update', 'licenses', null, null)$$, :'c1', :'c1'),
  'delete, restore, member added, member revoked and licence change are audited in order'
);
select is(
  (
    select count(distinct shop_id)::int from shopsync.audit_log
    where id > :a0
  ), 1, 'all entries carry shop A'
);
select isnt(
  (
    select details #>> '{new,revoked_at}' from shopsync.audit_log
    where id > :a0 and table_name = 'shop_members' and action = 'update'
  ),
  null, 'the member change keeps the new row (revoked_at set)'
);
select is(
  (
    select (details #>> '{old,max_devices}') || '->' || (details #>> '{new,max_devices}') from shopsync.audit_log
    where id > :a0 and table_name = 'licenses'
  ),
  format('%s->%s', :max_dev, :max_dev + 10), 'the licence change keeps old and new values'
);

-- TEST: an update that neither deletes nor restores is not audited
call tests.authenticate_as('staff@shop-a.test');
update public.customers set notes = 'plain edit'
where id = :'c1';
reset role;
select is(
  (
    select count(*)::int from shopsync.audit_log
    where id > :a0 and table_name = 'customers'
  ), 2,
  'a plain edit adds no audit entry'
);

-- TEST: API roles cannot write the audit log
select ok(
  not has_table_privilege('authenticated', 'shopsync.audit_log', 'insert, update, delete, truncate')
  and not has_table_privilege('anon', 'shopsync.audit_log', 'insert, update, delete, truncate'),
  'authenticated and anon cannot write the audit log'
);
select ok(
  not has_table_privilege('authenticated', 'shopsync.change_log', 'insert, update, delete, truncate'),
  'authenticated cannot write the change log either'
);

select * from finish();
rollback;
