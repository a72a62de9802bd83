-- auth.uid(), auth.role(), auth.email() and auth.jwt() read request.jwt.claims, as on Supabase.
begin;
select plan(7);

-- TEST: without claims every helper answers null.
select is(auth.uid(), null, 'auth.uid() is null without claims');
select is(auth.jwt(), null, 'auth.jwt() is null without claims');

set local "request.jwt.claims" = '{"sub": "6f1d1c0e-7c1a-4c59-9b43-0c1d2a6f9e11", "role": "authenticated",
  "email": "ada@example.com", "app_metadata": {"shop_id": 7}}';

-- TEST: with claims set, each helper returns its claim.
select is(auth.uid(), '6f1d1c0e-7c1a-4c59-9b43-0c1d2a6f9e11'::uuid, 'auth.uid() is the sub claim');
select is(auth.role(), 'authenticated', 'auth.role() is the role claim');
select is(auth.email(), 'ada@example.com', 'auth.email() is the email claim');
select is(auth.jwt() -> 'app_metadata' ->> 'shop_id', '7', 'auth.jwt() is the whole claims object');

-- TEST: the legacy per-claim setting request.jwt.claim.sub wins over request.jwt.claims, as on Supabase.
set local "request.jwt.claim.sub" = '0b8f7f4e-3a43-4d3c-8f7a-7d2f8a5c1b22';
select is(auth.uid(), '0b8f7f4e-3a43-4d3c-8f7a-7d2f8a5c1b22'::uuid, 'request.jwt.claim.sub is read first');

select * from finish();
rollback;
