-- Threat closed: fields of an invoice the hash did not cover (its device, extra keys in its lines)
-- could be changed without verify_invoice_chain noticing, and verify_invoice_chain answered ok to
-- a caller who cannot see the series. Now new invoices are hashed in canonical form v2 (every
-- stored field), lines carry no other keys, v1 chains still verify (and a v2 invoice cannot be
-- passed off as v1), and only an active member of the shop gets an answer.
begin;
select plan(8);

-- A row of public.invoices from jsonb, with its hash in its own canonical form.
create function pg_temp.invoice(p jsonb) returns public.invoices
language sql as $$
  select jsonb_populate_record(null::public.invoices,
    p || jsonb_build_object('hash', shopsync.invoice_row_hash(jsonb_populate_record(null::public.invoices, p))))
$$;
create function pg_temp.base(p_id uuid, p_series text, p_number int, p_prev text, p_version int) returns jsonb
language sql as $$
  select jsonb_build_object(
    'id', p_id, 'shop_id', 'aaaaaaaa-0000-4000-8000-000000000000',
    'device_id', 'd0000000-0000-4000-8000-0000000000a1', 'series', p_series, 'number', p_number,
    'issued_at', '2026-11-22T09:30:00Z', 'currency', 'EUR', 'kind', 'invoice', 'hash_version', p_version,
    'lines', '[{"description": "Mug", "quantity": "1", "unit_price": "10.00", "tax_rate": "19.00"}]'::jsonb,
    'subtotal', 10.00, 'tax', 1.90, 'total', 11.90, 'prev_hash', p_prev,
    -- (the server's columns, for the rows written behind the triggers' back)
    'version', 1, 'created_at', now(), 'updated_at', now(), 'client_changed_at', now())
$$;

-- TEST: a new (v2) invoice verifies; changing its device behind the triggers is detected
insert into public.invoices select (pg_temp.invoice(pg_temp.base(
  'a1000000-0000-4000-8000-000000000001', 'HV2', 1, repeat('0', 64), 2))).*;
call tests.authenticate_as('staff@shop-a.test');
select is(public.verify_invoice_chain('HV2') ->> 'ok', 'true', 'a v2 chain verifies');
reset role;
set local session_replication_role = replica;
update public.invoices set device_id = 'd0000000-0000-4000-8000-0000000000a2'
where id = 'a1000000-0000-4000-8000-000000000001';
set local session_replication_role = origin;
call tests.authenticate_as('staff@shop-a.test');
select is(public.verify_invoice_chain('HV2') ->> 'reason', 'hash_mismatch', 'a changed device id breaks the hash');
reset role;

-- TEST: lines carry no keys the hash does not cover
select throws_ok(
  $$insert into public.invoices select (pg_temp.invoice(pg_temp.base('a1000000-0000-4000-8000-000000000009', 'HVX', 1,
    repeat('0', 64), 2) || '{"lines": [{"description": "Mug", "quantity": "1", "unit_price": "10.00", "tax_rate": "19.00", "note": "x"}]}')).*$$,
  'SS106', null, 'a line with an extra key is refused'
);

-- TEST: a new invoice in canonical form v1 is refused
select throws_ok(
  $$insert into public.invoices select (pg_temp.invoice(pg_temp.base('a1000000-0000-4000-8000-000000000008', 'HVY', 1,
    repeat('0', 64), 1))).*$$,
  'SS105', null, 'a new invoice hashed in form v1 is refused'
);

-- TEST: a v1 chain stored before v2 still verifies, followed by v2 invoices
set local session_replication_role = replica;
insert into public.invoices select (pg_temp.invoice(pg_temp.base(
  'a1000000-0000-4000-8000-000000000011', 'HV1', 1, repeat('0', 64), 1))).*;
insert into public.invoices select (pg_temp.invoice(pg_temp.base(
  'a1000000-0000-4000-8000-000000000012', 'HV1', 2,
  (select i.hash from public.invoices as i where i.id = 'a1000000-0000-4000-8000-000000000011'), 1))).*;
insert into shopsync.invoice_series (shop_id, series, device_id, v2_from)
values ('aaaaaaaa-0000-4000-8000-000000000000', 'HV1', 'd0000000-0000-4000-8000-0000000000a1', 3);
set local session_replication_role = origin;
insert into public.invoices select (pg_temp.invoice(pg_temp.base(
  'a1000000-0000-4000-8000-000000000013', 'HV1', 3,
  (select i.hash from public.invoices as i where i.id = 'a1000000-0000-4000-8000-000000000012'), 2))).*;
call tests.authenticate_as('staff@shop-a.test');
select is(public.verify_invoice_chain('HV1') ->> 'checked', '3', 'a v1 chain continued in v2 verifies');
reset role;

-- TEST: a v2 invoice passed off as v1 (to change what v1 does not cover) is detected
set local session_replication_role = replica;
update public.invoices as i
set hash_version = 1, device_id = 'd0000000-0000-4000-8000-0000000000a2',
  hash = shopsync.invoice_row_hash(jsonb_populate_record(null::public.invoices,
    to_jsonb(i) || '{"hash_version": 1, "device_id": "d0000000-0000-4000-8000-0000000000a2"}'))
where i.id = 'a1000000-0000-4000-8000-000000000013';
set local session_replication_role = origin;
call tests.authenticate_as('staff@shop-a.test');
select is(public.verify_invoice_chain('HV1') ->> 'reason', 'version_downgrade', 'a v2 invoice turned v1 is detected');

-- TEST: only an active member of the shop gets an answer
call tests.authenticate_as('staff@shop-b.test', 'aaaaaaaa-0000-4000-8000-000000000000');
select throws_ok($$select public.verify_invoice_chain('HV2')$$, 'PT403', null,
  'a token naming a shop the user is not a member of gets no answer');
call tests.authenticate_as('staff@shop-b.test');
select is(public.verify_invoice_chain('HV2') ->> 'checked', '0', 'another shop''s series is not visible');

select * from finish();
rollback;
