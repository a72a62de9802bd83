-- Liveness and identity: the only RPCs anon may call, and the one that says who the caller is.

create or replace function public.health()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'ok', true,
    'server_time', pg_catalog.now(),
    'postgres', pg_catalog.current_setting('server_version')
  )
$$;

comment on function public.health() is 'Liveness probe; callable by anyone.';

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

revoke all on function public.health() from public;
revoke all on function public.whoami() from public;
grant execute on function public.health() to anon, authenticated, service_role;
grant execute on function public.whoami() to anon, authenticated, service_role;
