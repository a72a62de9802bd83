-- Seed data for the local stack (applied by `shopsync stack up|reset` and `supabase db reset`).
select 1;
