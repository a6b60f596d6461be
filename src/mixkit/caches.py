"""Keep third-party caches out of the user's home: the command line's promise that a run writes
only inside ``--output`` (``docs/reliability.md``, "What mixkit writes").

Imported before torch, timm or matplotlib (importing timm imports ``torch._dynamo``, which
creates ``$TMPDIR/torchinductor_$USER`` at import time), so it must stay free of heavy imports.
Only the ``mixkit`` command calls :func:`redirect_caches`: a library user's process and
environment are theirs. A variable the user has set is never overridden.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# variable -> sub-folder of the run's temporary folder
REDIRECTED = {
    "MPLCONFIGDIR": "matplotlib",               # font cache (~/.cache/matplotlib), rc folder
    "TORCHINDUCTOR_CACHE_DIR": "torchinductor",   # torch.compile's kernel and graph caches
}


def redirect_caches() -> str | None:
    """Point the caches in :data:`REDIRECTED` at one temporary folder that is removed when the
    process exits; return it (None if every variable was already set)."""
    unset = [v for v in REDIRECTED if not os.environ.get(v)]
    if not unset:
        return None
    folder = tempfile.mkdtemp(prefix="mixkit-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for var in unset:
        os.environ[var] = os.path.join(folder, REDIRECTED[var])
    return folder
