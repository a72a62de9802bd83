-- Identity: the RPC that says who the caller is (anon may call it; it answers "nobody").
-- health(), the liveness probe, is defined with the schema version it reports (sync_schema migration).

create or replace function public.whoami()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'uid', auth.uid(),
    'role', auth.role(),
    'email', auth.email(),
    'db_role', current_user::text
  )
$$;

comment on function public.whoami() is 'The caller as the database sees them: JWT subject, role and email.';

revoke all on function public.whoami() from public;
grant execute on function public.whoami() to anon, authenticated, service_role;
