"""Makes the checkout's serverbench package importable from the tests of this folder."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from serverbench import namespaces  # noqa: E402

__all__ = ["ROOT", "namespaces"]
