-- Threat closed: tokens without a shop (clients cannot sync) or a hook anyone can call to mint
-- claims; the hook is executable by supabase_auth_admin only, as Supabase documents.
begin;
select plan(9);

-- TEST: only supabase_auth_admin may execute the hook
select ok(has_function_privilege('supabase_auth_admin', 'public.custom_access_token_hook(jsonb)', 'execute'), 'supabase_auth_admin can execute the hook');
select ok(not has_function_privilege('authenticated', 'public.custom_access_token_hook(jsonb)', 'execute'), 'authenticated cannot execute the hook');
select ok(not has_function_privilege('anon', 'public.custom_access_token_hook(jsonb)', 'execute'), 'anon cannot execute the hook');

-- TEST: revoked members get no shop
update public.shop_members set revoked_at = now()
where user_id = 'a0000000-0000-4000-8000-000000000003';

set local role supabase_auth_admin;

select public.custom_access_token_hook(
  '{"user_id": "a0000000-0000-4000-8000-000000000002", "claims": {"sub": "a0000000-0000-4000-8000-000000000002", "role": "authenticated", "app_metadata": {"provider": "email"}}}'
) as staff \gset
select public.custom_access_token_hook(
  '{"user_id": "a0000000-0000-4000-8000-000000000003", "claims": {"sub": "a0000000-0000-4000-8000-000000000003", "app_metadata": {}}}'
) as viewer \gset

-- pgTAP lives in schema extensions, which supabase_auth_admin cannot use: assert as postgres.
reset role;
select is((:'staff'::jsonb) #>> '{claims,app_metadata,shop_id}', 'aaaaaaaa-0000-4000-8000-000000000000', 'the hook adds the member''s shop_id');
select is((:'staff'::jsonb) #>> '{claims,app_metadata,shop_role}', 'staff', 'the hook adds the member''s role');
select is((:'staff'::jsonb) #>> '{claims,app_metadata,provider}', 'email', 'the hook keeps the other app_metadata');
select is((:'staff'::jsonb) #>> '{claims,sub}', 'a0000000-0000-4000-8000-000000000002', 'the hook keeps the other claims');

select is(
  (:'viewer'::jsonb) #> '{claims,app_metadata}',
  '{}'::jsonb,
  'a revoked member gets no shop in app_metadata'
);

call tests.authenticate_as_claims('{"sub": "a0000000-0000-4000-8000-000000000002", "role": "authenticated"}');
select throws_ok(
  $$select public.custom_access_token_hook('{"user_id": "a0000000-0000-4000-8000-000000000002", "claims": {}}')$$,
  '42501', null, 'a signed-in user cannot call the hook'
);

select * from finish();
rollback;
