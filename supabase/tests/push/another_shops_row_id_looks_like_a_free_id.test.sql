-- Threat closed: a push from shop B naming shop A's row ids learns that they exist (id_exists) and
-- locks A's rows (blocking A's writers). Another shop's id must answer exactly like a free id for
-- update and delete; an insert is refused with nothing more than id_unavailable; A's row is left
-- as it was. (That no lock is taken is shown with two connections in
-- tests/server/test_push_scope.py.)
begin;
select plan(8);

select extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'aaaaaaaa-0000-4000-8000-000000000000/C-0001') as a_c1 \gset
select 'c0000000-0000-4000-8000-0000000000f1' as free_id \gset
select
  name as a_name,
  version as a_version
from public.customers
where id = :'a_c1' \gset

call tests.authenticate_as('staff@shop-b.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000b1');
select public.sync_push('d0000000-0000-4000-8000-0000000000b1', jsonb_build_array(
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000001', 'table', 'customers', 'op', 'update',
    'row_id', :'a_c1', 'base_version', 1, 'data', jsonb_build_object('name', 'x')),
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000002', 'table', 'customers', 'op', 'update',
    'row_id', :'free_id', 'base_version', 1, 'data', jsonb_build_object('name', 'x')),
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000003', 'table', 'customers', 'op', 'delete',
    'row_id', :'a_c1', 'base_version', 1),
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000004', 'table', 'customers', 'op', 'delete',
    'row_id', :'free_id', 'base_version', 1),
  jsonb_build_object('event_id', 'e0000000-0000-4000-8000-000000000005', 'table', 'customers', 'op', 'insert',
    'row_id', :'a_c1', 'data', jsonb_build_object('name', 'Copy'))
)) as r \gset

-- TEST: update and delete of another shop's id answer exactly as for a free id (the id aside)
select is(
  replace(((:'r'::jsonb) #> '{results,0}' #- '{event_id}')::text, :'a_c1', 'ID'),
  replace(((:'r'::jsonb) #> '{results,1}' #- '{event_id}')::text, :'free_id', 'ID'),
  'an update of another shop''s id answers like an update of a free id'
);
select is(
  replace(((:'r'::jsonb) #> '{results,2}' #- '{event_id}')::text, :'a_c1', 'ID'),
  replace(((:'r'::jsonb) #> '{results,3}' #- '{event_id}')::text, :'free_id', 'ID'),
  'a delete of another shop''s id answers like a delete of a free id'
);
select is((:'r'::jsonb) #>> '{results,0,reason}', 'not_found', '... which is not_found');

-- TEST: an insert of another shop's id is refused with id_unavailable, not an id_exists conflict
select is((:'r'::jsonb) #>> '{results,4,status}', 'rejected', 'an insert of another shop''s id is rejected');
select is((:'r'::jsonb) #>> '{results,4,reason}', 'id_unavailable', '... as id_unavailable');
select is((:'r'::jsonb) #> '{results,4,server_row}', 'null'::jsonb, '... with no server row');

-- TEST: shop A's row is untouched
reset role;
select is(
  (select row(name, version)::text from public.customers where id = :'a_c1'),
  row(:'a_name'::text, :'a_version'::bigint)::text,
  'shop A''s row is unchanged'
);
-- TEST: the refused events leave no claim behind (a later real event with these ids is not a duplicate)
select is(
  (select count(*)::int from shopsync.push_results where shop_id = 'bbbbbbbb-0000-4000-8000-000000000000'
     and event_id in ('e0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000005')),
  0, 'rejected events store no result'
);

select * from finish();
rollback;
