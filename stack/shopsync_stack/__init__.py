"""shopsync-stack: a local Supabase-compatible stack for shopsync, no Docker.

Postgres control (:class:`Stack`), the bootstrap SQL, the RPC gateway, access tokens and the
settings (URLs and keys from the environment or ``.env``). It knows no device code.
"""

from .errors import StackError
from .postgres import Stack, find_project_root
from .settings import StackSettings, load_settings
from .tokens import mint_user_token

__version__ = "0.1.0"
__all__ = ["__version__", "Stack", "StackError", "StackSettings", "find_project_root", "load_settings",
           "mint_user_token"]
