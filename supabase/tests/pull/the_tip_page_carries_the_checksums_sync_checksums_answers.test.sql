-- Threat closed: a device verifies against checksums that do not belong to the cursor it applied
-- (the tip page's checksums read apart from its cursor), or against a document that differs from
-- what sync_checksums answers; a page short of the tip carries checksums it cannot use.
begin;
select plan(5);

call tests.authenticate_as('staff@shop-a.test');
call tests.register_device('d0000000-0000-4000-8000-0000000000f1');

-- TEST: a pull to the tip carries exactly what sync_checksums answers (but the time).
select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000f1', 0, 5000) as p \gset
select public.sync_checksums('d0000000-0000-4000-8000-0000000000f1') as c \gset
select is((:'p'::jsonb) ->> 'has_more', 'false', 'one page reaches the tip');
select is(
  ((:'p'::jsonb) -> 'checksums') - 'server_time'::text, (:'c'::jsonb) - 'server_time'::text,
  'the tip page carries sync_checksums'' answer'
);
select is(
  ((:'p'::jsonb) -> 'checksums' ->> 'cursor')::bigint, ((:'p'::jsonb) ->> 'cursor')::bigint,
  'its cursor is the page''s'
);

-- TEST: a page short of the tip carries none.
select public.sync_pull_v2('d0000000-0000-4000-8000-0000000000f1', 0, 1) as s \gset
select is((:'s'::jsonb) ->> 'has_more', 'true', 'a one-row page is short of the tip');
select is((:'s'::jsonb) -> 'checksums', 'null'::jsonb, 'and carries no checksums');

select * from finish();
rollback;
