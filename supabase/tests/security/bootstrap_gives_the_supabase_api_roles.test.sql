-- The bootstrap gives the roles every Supabase database has, with Supabase's attributes.
begin;
select plan(12);

-- TEST: anon and authenticated cannot log in and do not inherit.
select is(
  (
    select rolcanlogin from pg_catalog.pg_roles
    where rolname = 'anon'
  ), false, 'anon is nologin'
);
select is(
  (
    select rolinherit from pg_catalog.pg_roles
    where rolname = 'anon'
  ), false, 'anon is noinherit'
);
select is(
  (
    select rolcanlogin from pg_catalog.pg_roles
    where rolname = 'authenticated'
  ), false,
  'authenticated is nologin'
);
select is(
  (
    select rolinherit from pg_catalog.pg_roles
    where rolname = 'authenticated'
  ), false,
  'authenticated is noinherit'
);

-- TEST: service_role bypasses row level security and cannot log in.
select is(
  (
    select rolbypassrls from pg_catalog.pg_roles
    where rolname = 'service_role'
  ), true,
  'service_role bypasses rls'
);
select is(
  (
    select rolcanlogin from pg_catalog.pg_roles
    where rolname = 'service_role'
  ), false,
  'service_role is nologin'
);

-- TEST: authenticator logs in, does not inherit, and may switch to each API role.
select is(
  (
    select rolcanlogin from pg_catalog.pg_roles
    where rolname = 'authenticator'
  ), true,
  'authenticator can log in'
);
select is(
  (
    select rolinherit from pg_catalog.pg_roles
    where rolname = 'authenticator'
  ), false,
  'authenticator is noinherit'
);
select ok(pg_catalog.pg_has_role('authenticator', 'anon', 'member'), 'authenticator is a member of anon');
select ok(
  pg_catalog.pg_has_role('authenticator', 'authenticated', 'member'),
  'authenticator is a member of authenticated'
);
select ok(
  pg_catalog.pg_has_role('authenticator', 'service_role', 'member'),
  'authenticator is a member of service_role'
);

-- TEST: being a member grants no privileges by itself (noinherit): authenticator has none of anon's.
select is(
  pg_catalog.pg_has_role('authenticator', 'anon', 'usage'), false,
  'authenticator does not inherit the privileges of anon'
);

select * from finish();
rollback;
