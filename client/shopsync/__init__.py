"""shopsync: offline-first sync for shop apps on Supabase."""

__version__ = "0.1.0"
__all__ = ["__version__"]
