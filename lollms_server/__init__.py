"""lollms_server: a self-hosted, asynchronous, multi-modal generation server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lollms-server")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
