"""tox plugin (loaded by tox from this file): find every interpreter the matrix needs.

The matrix runs on Python 3.11, 3.12 and 3.13 (found on PATH, else among pyenv's
installed versions, the way .ci/run finds them) and on CPython 3.13.5, the current
patch release of Debian 13, which ``.ci/build-python`` builds into a fixed prefix
(``SCOPELOOP_PYTHON_3135`` overrides where tox looks for it).  tox.ini sets
``skip_missing_interpreters = false``: an interpreter that is missing fails the run
instead of being skipped in silence.
"""

from __future__ import annotations

import glob
import os

_PYENV_BINS = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[1-9]*/bin")))

# Appended, so an interpreter already on PATH keeps precedence.
os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *_PYENV_BINS])
