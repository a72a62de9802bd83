-- Threat closed (issue 12, item 4): the owner of shop B inserts a membership for shop A's staff
-- member, backdated so the hook's "oldest membership" rule picks it: the victim's next token then
-- pointed at shop B, and the victim could not leave. Now the server sets created_at and added_by,
-- the token carries the shop the user chose, and a member can leave a shop.
begin;
select plan(12);

-- The owner of shop B, acting through the table path.
call tests.authenticate_as('owner@shop-b.test');
insert into public.shop_members (shop_id, user_id, role, created_at, added_by)
values ('bbbbbbbb-0000-4000-8000-000000000000', 'a0000000-0000-4000-8000-000000000002', 'staff',
  '2000-01-01', 'a0000000-0000-4000-8000-000000000002');

call tests.clear_authentication();
-- TEST: the backdated created_at and the forged added_by were replaced by the server's values
select is(
  (select created_at from public.shop_members
    where shop_id = 'bbbbbbbb-0000-4000-8000-000000000000' and user_id = 'a0000000-0000-4000-8000-000000000002'),
  now(), 'created_at of an added membership is the server''s clock'
);
select is(
  (select added_by from public.shop_members
    where shop_id = 'bbbbbbbb-0000-4000-8000-000000000000' and user_id = 'a0000000-0000-4000-8000-000000000002'),
  'b0000000-0000-4000-8000-000000000001'::uuid, 'added_by is the inserting user, not what was sent'
);

-- TEST: the victim's next token still carries shop A
set local role supabase_auth_admin;
select public.custom_access_token_hook(
  '{"user_id": "a0000000-0000-4000-8000-000000000002", "claims": {"role": "authenticated"}}'
) -> 'claims' -> 'app_metadata' ->> 'shop_id' as hook_shop \gset
reset role;
select is(:'hook_shop'::text, 'aaaaaaaa-0000-4000-8000-000000000000'::text, 'the hook keeps the victim in the shop they were in');

-- TEST: an update cannot backdate the membership either
call tests.clear_authentication();
call tests.authenticate_as('owner@shop-b.test');
update public.shop_members set created_at = '2000-01-01'
where shop_id = 'bbbbbbbb-0000-4000-8000-000000000000' and user_id = 'a0000000-0000-4000-8000-000000000002';
call tests.clear_authentication();
set local role supabase_auth_admin;
select public.custom_access_token_hook(
  '{"user_id": "a0000000-0000-4000-8000-000000000002", "claims": {"role": "authenticated"}}'
) -> 'claims' -> 'app_metadata' ->> 'shop_id' as hook_shop \gset
reset role;
select is(:'hook_shop'::text, 'aaaaaaaa-0000-4000-8000-000000000000'::text, 'an update of created_at does not move the victim either');

-- TEST: the token carries the shop the user chose among their active memberships
call tests.authenticate_as('staff@shop-a.test');
select is(
  public.choose_shop('bbbbbbbb-0000-4000-8000-000000000000') ->> 'role', 'staff',
  'a member of two shops can choose the other one'
);
call tests.clear_authentication();
set local role supabase_auth_admin;
select public.custom_access_token_hook(
  '{"user_id": "a0000000-0000-4000-8000-000000000002", "claims": {"role": "authenticated"}}'
) -> 'claims' -> 'app_metadata' ->> 'shop_id' as hook_shop \gset
reset role;
select is(:'hook_shop'::text, 'bbbbbbbb-0000-4000-8000-000000000000'::text, 'the next token carries the chosen shop');
call tests.clear_authentication();
call tests.authenticate_as('staff@shop-a.test');
select is(
  public.choose_shop('aaaaaaaa-0000-4000-8000-000000000000') ->> 'shop_id', 'aaaaaaaa-0000-4000-8000-000000000000',
  'and can choose back'
);

-- TEST: nobody can choose a shop they are not an active member of
select throws_ok(
  $$select public.choose_shop('cccccccc-0000-4000-8000-000000000000')$$,
  'PT403', null, 'choosing a shop without a membership is refused'
);

-- TEST: the victim can leave the shop they were added to, and its token no longer names it
select is(
  public.leave_shop('bbbbbbbb-0000-4000-8000-000000000000') ->> 'shop_id', 'bbbbbbbb-0000-4000-8000-000000000000',
  'a member can leave a shop'
);
call tests.clear_authentication();
select isnt(
  (select revoked_at from public.shop_members
    where shop_id = 'bbbbbbbb-0000-4000-8000-000000000000' and user_id = 'a0000000-0000-4000-8000-000000000002'),
  null, 'leaving revokes the membership'
);

-- TEST: the last owner of a shop cannot leave it
call tests.authenticate_as('owner@shop-b.test');
select throws_ok(
  $$select public.leave_shop('bbbbbbbb-0000-4000-8000-000000000000')$$,
  'PT409', null, 'the last owner cannot leave'
);

-- TEST: anon can neither choose nor leave
call tests.authenticate_as_anon();
select throws_ok(
  $$select public.choose_shop('aaaaaaaa-0000-4000-8000-000000000000')$$,
  '42501', null, 'anon cannot call choose_shop'
);

select * from finish();
rollback;
